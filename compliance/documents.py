"""The private-file responder now lives in the core (exchange.files); this name stays for the admin's import
until the admin imports it from the core."""

from exchange.files import IMAGE_EXTENSIONS, file_response

__all__ = ["IMAGE_EXTENSIONS", "file_response"]
