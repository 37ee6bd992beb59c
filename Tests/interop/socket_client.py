#!/usr/bin/env python3
"""Sends requests to hsmd over its Unix socket and prints the answers, for tests that must call
hsmd as another user (run under `setpriv --reuid`). Standard library only.

stdin: {"socket": PATH, "requests": [{"method", "path", "body"?}]}
stdout: [{"status": N, "body": {...} or null}]
"""
import http.client
import json
import socket
import sys


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def main():
    job = json.load(sys.stdin)
    answers = []
    for request in job["requests"]:
        connection = UnixConnection(job["socket"])
        body = json.dumps(request["body"]) if "body" in request else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(request["method"], request["path"], body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        answers.append({"status": response.status, "body": parsed})
        connection.close()
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
