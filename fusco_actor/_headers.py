"""Headers: ordered, repeats kept, case-insensitive lookup (after h11's _headers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import overload

__all__ = ["Headers"]


class Headers:
    """Response headers as they came on the wire: order and repeats kept.

    Names are lower-cased ``str``, values ``str`` (latin-1) with surrounding
    white space trimmed. Iterating yields ``(name, value)`` pairs.

    Example:
        >>> h = Headers([("set-cookie", "a=1"), ("set-cookie", "b=2")])
        >>> h["Set-Cookie"]
        'a=1, b=2'
        >>> h.get_all("set-cookie")
        ['a=1', 'b=2']
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...] = ()) -> None:
        """Wrap ``pairs`` of (lower-case name, value); they are not copied or checked."""
        self._pairs: tuple[tuple[str, str], ...] = tuple(pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Yield the ``(name, value)`` pairs in wire order."""
        return iter(self._pairs)

    def __len__(self) -> int:
        """Return the number of pairs (repeats counted)."""
        return len(self._pairs)

    def __contains__(self, name: object) -> bool:
        """Return whether a header of this name (any case) is present."""
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(n == key for n, _ in self._pairs)

    def __getitem__(self, name: str) -> str:
        """Return the values of ``name`` joined by ``", "`` (RFC 9110 §5.3).

        Raises:
            KeyError: when no header of that name is present.
        """
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return values[0] if len(values) == 1 else ", ".join(values)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    @overload
    def get(self, name: str, default: None) -> str | None: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return ``headers[name]``, or ``default`` when it is absent."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name`` (any case) in wire order; ``[]`` when absent."""
        key = name.lower()
        return [v for n, v in self._pairs if n == key]

    def __eq__(self, other: object) -> bool:
        """Compare pairs in order; a list of pairs compares too."""
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        if isinstance(other, (list, tuple)):
            return list(self._pairs) == [tuple(p) for p in other]
        return NotImplemented

    def __hash__(self) -> int:
        """Hash the pairs, so that headers may be used as keys."""
        return hash(self._pairs)

    def __repr__(self) -> str:
        """Show the pairs."""
        return f"Headers({list(self._pairs)!r})"
