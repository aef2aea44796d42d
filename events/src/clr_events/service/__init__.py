"""What every service's HTTP side shares: problem details, bearer tokens, idempotent
commands, and the runtime that runs the API with its relays, consumers and jobs.

Needs the ``service`` extra (FastAPI, uvicorn, PyJWT). The design keeps FastAPI out of
this library; this subpackage departs from that so the four services do not carry four
copies of the same infrastructure (see the README). Domains never import it.
"""
