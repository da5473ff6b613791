"""`posray merchants token|revoke-tokens <merchant_id>`: the operator's side of the merchant API."""

from __future__ import annotations

import asyncio
import sys


def add_parser(subparsers) -> None:
    """Register `merchants token <id>` and `merchants revoke-tokens <id>` on the `posray` parser."""
    merchants = subparsers.add_parser("merchants", help="merchant API tokens")
    actions = merchants.add_subparsers(dest="merchant_action", required=True)
    token = actions.add_parser(
        "token", help="print a merchant API token for a registered merchant (give it to the merchant only)")
    token.add_argument("merchant_id")
    revoke = actions.add_parser(
        "revoke-tokens", help="revoke every token of a merchant issued so far (immediate)")
    revoke.add_argument("merchant_id")
    merchants.set_defaults(func=cmd_merchants)


def cmd_merchants(args) -> int:
    """Run the action; 0 when done, 1 when refused or unreachable, 2 on configuration errors."""
    from posray.locate import deployment_settings
    from posray.locate import require

    settings = deployment_settings(args)
    require(settings, "pg_dsn")
    return asyncio.run(_run(settings, args.merchant_action, args.merchant_id))


async def _run(settings, action: str, merchant_id: str) -> int:
    from posray.adapters.keyfile import KeyFileError, load_keys
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_merchants import PgMerchants
    from posray.domain.errors import PosrayError, Unavailable
    from posray.services.merchants import issue_token, revoke_tokens

    try:
        keys = load_keys(settings.seed_file)
        pool = await create_pool(settings.pg_dsn, size_max=1)
    except Unavailable:
        raise  # posray's one handler says what to do about it
    except (KeyFileError, PosrayError) as e:
        print(f"posray merchants: {e}", file=sys.stderr)
        return 1
    try:
        merchants = PgMerchants(pool)
        if action == "token":
            issued = await issue_token(merchants, keys.merchant_token, merchant_id)
            print(issued.token)
            print(f"(merchant {issued.merchant_id}, token version {issued.version}; valid until"
                  f" `posray merchants revoke-tokens {issued.merchant_id}`)", file=sys.stderr)
        else:
            version = await revoke_tokens(merchants, merchant_id)
            print(f"revoked every token of {merchant_id}; tokens issued from now on carry version {version}")
        return 0
    except PosrayError as e:
        print(f"posray merchants: {e}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
