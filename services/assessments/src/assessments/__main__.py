"""``python -m assessments``: serve the API with its relays and consumer."""

from assessments.service import build
from clr_events.service.serve import serve

if __name__ == "__main__":
    serve(build, default_port=8103)
