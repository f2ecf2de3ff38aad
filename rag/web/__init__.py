"""The web page: ``index.html``, ``app.css`` and ``app.js`` shipped as package data, the
template filled in on the server, and the answer rendered there for the no-JavaScript form.
"""
