"""A webhook receiver that checks tutorq's signatures with the reference `standardwebhooks`
package. Usage: receiver.py PORT SECRET. For every POST it prints one JSON line:
{"verified": bool, "tampered_rejected": bool, "stale_rejected": bool, "id": ..., "type": ...}
and answers 204."""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT = int(sys.argv[1])
HOOK = Webhook(sys.argv[2])


def verifies(body, headers):
    try:
        HOOK.verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        headers = {k: self.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        tampered = body.replace("task.", "task.X", 1)
        stale = dict(headers, **{"webhook-timestamp": str(int(time.time()) - 3600)})
        report = {
            "verified": verifies(body, headers),
            "tampered_rejected": not verifies(tampered, headers),
            "stale_rejected": not verifies(body, stale),
            "id": headers["webhook-id"],
            "type": json.loads(body)["type"],
        }
        print(json.dumps(report), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


print(json.dumps({"listening": PORT}), flush=True)
HTTPServer(("127.0.0.1", PORT), Receiver).serve_forever()
