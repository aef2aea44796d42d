"""``python -m label_decisions``: serve the API with its consumer, clock and relay."""

from clr_events.service.serve import serve
from label_decisions.service import build

if __name__ == "__main__":
    serve(build, default_port=8104)
