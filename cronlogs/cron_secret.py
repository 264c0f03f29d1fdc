"""What makes a CRON_SECRET work, and what makes it strong.

`cronlogs.views` compares the secret with what a request presents in its headers, stripped
of surrounding whitespace and refused past MAX_SECRET_LENGTH characters. Headers carry
visible ASCII, so some secrets cannot match whatever a caller sends (`secret_is_usable`),
and `manage.py check --deploy` warns about weak ones (`secret_weaknesses`).
"""

# Longer than any sane secret: a presented secret this long is refused before it is compared.
MAX_SECRET_LENGTH = 512
MIN_STRONG_LENGTH = 32


def secret_is_usable(secret):
    """Whether a request can present `secret` so that it matches.

    Never for an empty secret, one with leading or trailing whitespace (a presented secret
    is stripped) or one longer than MAX_SECRET_LENGTH (refused unread); not reliably for
    one with non-ASCII or control characters, which HTTP clients and servers encode
    differently in a header, or refuse.
    """
    return (
        bool(secret)
        and secret == secret.strip()
        and secret.isascii()
        and secret.isprintable()
        and len(secret) <= MAX_SECRET_LENGTH
    )


def secret_weaknesses(secret):
    """Why a CRON_SECRET that is set is not a good one, in words (empty when it is)."""
    weaknesses = []
    if len(secret) < MIN_STRONG_LENGTH:
        weaknesses.append(f"it is shorter than {MIN_STRONG_LENGTH} characters")
    if any(character.isspace() for character in secret):
        weaknesses.append("it contains whitespace")
    if not secret.isascii():
        weaknesses.append("it contains non-ASCII characters")
    elif not secret.isprintable():
        weaknesses.append("it contains control characters")
    if len(secret) > MAX_SECRET_LENGTH:
        weaknesses.append(f"it is longer than {MAX_SECRET_LENGTH} characters")
    return weaknesses
