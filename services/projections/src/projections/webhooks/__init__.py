"""Webhooks: each public label event pushed to registered endpoints (Standard Webhooks).

See ``docs/webhooks.md``. Pure parts: :mod:`.signing` (secrets and signatures) and
:mod:`.policy` (what an answer means, the retry schedule, the dead state, which targets
may be called); PostgreSQL: :mod:`.store`; HTTP out: :mod:`.delivery`; one instance
delivers: :mod:`.dispatcher`; the admin API: :mod:`.api`.
"""
