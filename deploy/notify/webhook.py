#!/usr/bin/env python3
"""Warrant notify_command: POST a batch of new change requests to a webhook.

Warrant runs notify_command with one batch as JSON on stdin:
    {"host": "web-1", "requests": [ChangeRequest, ...]}
This turns it into one message for people: each request's change, rendered,
and the exact `warrant approve` command that signs it.

    notify_command = "/usr/share/warrant/notify/webhook.py --format slack"
    # with WARRANT_WEBHOOK_URL in the daemon's environment (systemd:
    # Environment= or EnvironmentFile= in a drop-in), or --url.

--format slack   {"text": ...} for Slack, Mattermost and Rocket.Chat
                 incoming webhooks.
--format ticket  {"title", "body", "host", "requests": [ids], "labels"} for
                 a ticket system's intake endpoint (or a small adapter).

Chain names, paths and the agent's executable are chosen by the agent: every
control and bidi character is shown as an escape, so the message reads as
the change it is. Exit status: 0 sent, 1 not sent (the reason on stderr).
"""

import argparse
import json
import os
import sys
import unicodedata
import urllib.error
import urllib.request

# Bidi embeddings, overrides and isolates, zero-width marks, line and
# paragraph separators, BOM: shown, never acted on.
INVISIBLE = set(range(0x200B, 0x2010)) | set(range(0x2028, 0x202F)) | set(range(0x2060, 0x206A)) | {0x061C, 0xFEFF}


def escape(text):
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append("\\x%02x" % code)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp", "Mn") or code in INVISIBLE or (
            ch.isspace() and code > 0x7F
        ):
            out.append("\\u%04x" % code if code <= 0xFFFF else "\\U%08x" % code)
        else:
            out.append(ch)
    return "".join(out)


def slack_code(text):
    """Agent text in a Slack code span: no markup inside, no way out of it."""
    return "`%s`" % escape(text).replace("`", "\\x60")


def slack_safe(text):
    """Slack reads <...> as links and mentions (<!channel>): entities instead."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def approve_command(request, show):
    return (
        "warrant approve %s --ssh-key ~/.ssh/id_ed25519 --ttl 30m --uses 1 --reason '...'"
        % show(request["id"])
    )


def describe(request, show):
    lines = [
        "Change request %s on %s" % (show(request["id"]), show(request["host"])),
        "  %s %s (profile %s)" % (show(request["action"]), show(request["target"]), show(request["profile"])),
        "  by %s (pid %s, uid %s), %s attempt(s)"
        % (show(request.get("exe", "?")), request.get("pid"), request.get("uid"), request.get("attempts")),
    ]
    if request.get("rendering"):
        lines.append("  exactly this content (digest %s):" % show(request.get("content_digest", "")))
        # split("\n"), not splitlines(): that would also break on U+2028 and
        # the other separators an agent could put in its text.
        lines.extend("    " + show(line) for line in request["rendering"].split("\n"))
    elif request.get("content_digest"):
        lines.append("  content digest %s" % show(request["content_digest"]))
    lines.append("  review and sign on the host: warrant requests show %s" % show(request["id"]))
    lines.append("  " + approve_command(request, show))
    return "\n".join(lines)


def payload(batch, form):
    requests = batch.get("requests", [])
    if form == "slack":
        body = "\n\n".join(describe(r, slack_code) for r in requests)
        text = "Warrant: %d change request(s) on %s need a Responsible Individual\n\n%s" % (
            len(requests),
            slack_code(batch.get("host", "?")),
            body,
        )
        return {"text": slack_safe(text)}
    host = escape(batch.get("host", "?"))
    body = "\n\n".join(describe(r, escape) for r in requests)
    return {
        "title": "Warrant: %d change request(s) on %s" % (len(requests), host),
        "body": body,
        "host": host,
        "requests": [escape(r["id"]) for r in requests],
        "labels": ["warrant", "change-request"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["slack", "ticket"], default="slack")
    parser.add_argument("--url", default=os.environ.get("WARRANT_WEBHOOK_URL"))
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if not args.url:
        print("webhook.py: no webhook URL: pass --url or set WARRANT_WEBHOOK_URL", file=sys.stderr)
        return 1
    try:
        batch = json.load(sys.stdin)
    except ValueError as e:
        print("webhook.py: stdin is not a Warrant request batch (JSON): %s" % e, file=sys.stderr)
        return 1
    data = json.dumps(payload(batch, args.format)).encode()
    request = urllib.request.Request(args.url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError) as e:
        print("webhook.py: POST to %s failed: %s" % (args.url, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
