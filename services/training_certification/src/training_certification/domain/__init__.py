"""Pure domain: no I/O, no framework imports; time and ids come in as arguments."""
