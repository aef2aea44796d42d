"""``python -m collaboration``: serve the API with its relay and consumer."""

from clr_events.service.serve import serve
from collaboration.service import build

if __name__ == "__main__":
    serve(build, default_port=8101)
