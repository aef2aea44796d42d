"""``python -m training_certification``: serve the API with its relay."""

from clr_events.service.serve import serve
from training_certification.service import build

if __name__ == "__main__":
    serve(build, default_port=8102)
