"""Pure helpers of python-plugin: no imports of the gateway, so `python -m unittest` runs them here."""


def front_end_url(base: str, instance_id: str) -> str:
    """Where the customer reaches an instance."""
    return f"{base.rstrip('/')}/t/{instance_id}"
