"""The label decisions service: label records per organisation and level."""
