"""Fresh phone numbers for the sandbox carrier, whose outcome is the last three digits."""
import secrets


def number(suffix: str) -> str:
    """A 12-digit number never used before in this run, ending in ``suffix``."""
    return "91" + "".join(secrets.choice("0123456789") for _ in range(10 - len(suffix))) + suffix


def extension(suffix: str) -> str:
    """A 6-digit agent extension ending in ``suffix``."""
    return "".join(secrets.choice("123456789") for _ in range(6 - len(suffix))) + suffix


CALLER_ID = "15168148111"
