"""The REST API (`audience serve`): FastAPI under /api/v1, on the same access control as the
console. `app.py` builds the application; `server.py` holds what requests share."""
