"""Operator command line: ``python -m cpaas`` (or the ``cpaas`` script).

    cpaas init                      create or upgrade the schema, seed the spec's accounts
    cpaas accounts list|create NAME|rotate-auth NAME
    cpaas templates list|approve ID|reject ID
    cpaas events replay-dead [--limit N]   put dead-lettered engine events back on the stream
"""
from __future__ import annotations

import argparse
import json
import re
import sys

import peewee

from cpaas import accounts, config, db, logs, migrations
from cpaas.models import Account, AnnounceTemplate

#: Account names become a storage folder (accounts/<name>/): no "." or ".." segments.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _out(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def _replay_dead(settings: config.Settings, limit: int | None) -> int:
    """Move dead-lettered events back to the event stream; the events process applies them."""
    import redis

    from cpaas.cdr import deadletter

    r = redis.Redis.from_url(settings.effective_redis_url)
    moved = deadletter.replay(r, limit)
    _out({"replayed": moved, "still_dead": deadletter.count(r)})
    return 0


def _init(database: peewee.Database, settings: config.Settings) -> None:
    """Create or upgrade the schema, then seed the spec's accounts."""
    with database.connection_context():
        migrations.upgrade(database)
        # Under the schema lock, so that two init runs at once seed the accounts once.
        with migrations.locked(database):
            accounts.seed(settings.data_dir, settings.account_secrets, settings.admin_password)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="cpaas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or upgrade the database schema and seed the default accounts")
    acc = sub.add_parser("accounts").add_subparsers(dest="action", required=True)
    acc.add_parser("list")
    acc.add_parser("create").add_argument("name")
    acc.add_parser("rotate-auth").add_argument("name")
    tpl = sub.add_parser("templates").add_subparsers(dest="action", required=True)
    tpl.add_parser("list")
    tpl.add_parser("approve").add_argument("template_id")
    tpl.add_parser("reject").add_argument("template_id")
    ev = sub.add_parser("events").add_subparsers(dest="action", required=True)
    ev.add_parser("replay-dead", help="replay the dead-letter stream once its cause is fixed"
                  ).add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)

    logs.setup()
    settings = config.load()
    database = db.init(settings.effective_database_url)

    if args.command == "events":
        return _replay_dead(settings, args.limit)
    try:
        if args.command == "init":
            _init(database, settings)
            return 0
        # The other commands never change the schema behind the operator's back.
        migrations.check(database)
    except migrations.MigrationError as err:
        parser.exit(1, f"cpaas: {err}\n")
    if args.command == "accounts":
        if args.action == "list":
            _out([{"account": a.name, "account_id": a.id, "created_at": a.created_at}
                  for a in Account.select().order_by(Account.created_at)])
        elif not NAME_RE.fullmatch(args.name):
            parser.error("account names are 1-64 letters, digits, _ . - starting with a letter or digit")
        elif args.action == "create":
            if Account.select().where(Account.name == args.name).exists():
                parser.error(f"account {args.name} already exists")
            account, secret = accounts.create(args.name)
            _out({"account": account.name, "account_id": account.id, "auth": secret})
        else:
            try:
                secret = accounts.set_secret(args.name)
            except KeyError:
                parser.error(f"no account {args.name}")
            _out({"account": args.name, "auth": secret})
        return 0
    if args.action == "list":
        _out([{"announce_template_id": t.id, "account_id": t.account_id,
               "template_text": t.template_text, "status": t.status}
              for t in AnnounceTemplate.select().order_by(AnnounceTemplate.created_at)])
        return 0
    status = "approved" if args.action == "approve" else "rejected"
    if not AnnounceTemplate.update(status=status).where(AnnounceTemplate.id == args.template_id).execute():
        parser.error(f"no template {args.template_id}")
    _out({"announce_template_id": args.template_id, "status": status})
    return 0
