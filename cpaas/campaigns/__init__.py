"""Campaign manager: contact lists, DND lists, CSV imports and campaigns."""
