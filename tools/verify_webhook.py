#!/usr/bin/env python3
"""Verify a webhook delivery from auth-host the way a receiver does, with the Standard
Webhooks reference library (`standardwebhooks`).

Usage: verify_webhook.py SECRET WEBHOOK_ID WEBHOOK_TIMESTAMP WEBHOOK_SIGNATURE < BODY

SECRET is the `whsec_…` secret auth-host signs with. Prints the event as JSON and exits 0
when the signature and timestamp check out; exits 1 otherwise.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    secret, webhook_id, timestamp, signature = sys.argv[1:5]
    body = sys.stdin.buffer.read()
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
    }
    try:
        event = Webhook(secret).verify(body, headers)
    except WebhookVerificationError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    print(json.dumps(event, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
