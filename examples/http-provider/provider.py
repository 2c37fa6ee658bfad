#!/usr/bin/env python3
"""A permission service for auth-host's `http_permissions` plugin: the smallest one to copy.

    PROVIDER_SECRET=whsec_... python3 provider.py permissions.json [PORT]

It checks each request's Standard Webhooks signature (the `standardwebhooks` package), then
answers from a table (`permissions.json`): per service, the permissions of an email, else
those under "*". A request that is not signed with the secret gets 401 and nothing else.
It prints `listening on 127.0.0.1:<port>` once it listens (PORT 0 or none: any free port).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_REQUEST_BYTES = 64 * 1024


def permissions_for(table: dict, service: str, user: dict) -> dict:
    rules = table.get(service, {})
    email = (user.get("email") or "").lower()
    return rules.get(email, rules.get("*", {}))


class Handler(BaseHTTPRequestHandler):
    webhook: Webhook
    table: dict

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_REQUEST_BYTES:
            return self.answer(413, {"error": "request too large"})
        body = self.rfile.read(length)
        try:
            request = self.webhook.verify(body, dict(self.headers))
        except WebhookVerificationError:
            return self.answer(401, {"error": "bad signature"})
        service, user = request.get("service", ""), request.get("user") or {}
        self.answer(200, permissions_for(self.table, service, user))

    def answer(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        Handler.table = json.load(f)
    Handler.webhook = Webhook(os.environ["PROVIDER_SECRET"])
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
