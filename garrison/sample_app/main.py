#!/usr/bin/env python3
"""Ave Caesar: the sample Flask app Garrison deploys when you bring none.

It is the app of the tutorial Garrison automates (an image with a line of
text below it), small enough to read in one go, and it exercises each part of
a deployment:

* ``/``         -- HTML rendered by Flask through gunicorn, with an image that
                   nginx serves from ``static/`` without touching the app;
* ``/healthz``  -- the health check: 200 ``ok`` once the app is up;
* ``/version``  -- ``$APP_VERSION`` (or ``1``), to see which release answers.

Garrison runs it with gunicorn as ``main:app``; this folder is deployed as a
plain directory, not as an importable package.

Running ``./main.py`` starts Flask's development server for a quick local
look. Unlike the tutorial it listens on 127.0.0.1 only and leaves debug mode
off unless ``FLASK_DEBUG=1``: the tutorial's ``0.0.0.0`` plus ``debug=True``
publishes the Werkzeug debugger, which executes arbitrary Python typed into
the browser, to anyone who can reach the port. In production gunicorn serves
the app and this block never runs.
"""

from __future__ import annotations

import os

from flask import Flask, Response, render_template

app = Flask(__name__)


@app.get("/")
def index() -> str:
    """The page: the picture, and a line of text below it."""
    return render_template("index.html")


@app.get("/healthz")
def healthz() -> Response:
    """Health check: answers as soon as a worker can serve requests."""
    return Response("ok", mimetype="text/plain")


@app.get("/version")
def version() -> Response:
    """Which release answers: the APP_VERSION environment variable, else "1"."""
    return Response(os.environ.get("APP_VERSION", "1"), mimetype="text/plain")


if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(os.environ.get("PORT", 9000)),
        debug=os.environ.get("FLASK_DEBUG") == "1",
    )
