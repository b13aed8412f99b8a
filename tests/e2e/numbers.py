"""Fresh phone numbers for the sandbox carrier, whose outcome is the last three digits."""
import secrets
from typing import Callable

#: Every number and extension handed out in this run. The e2e platforms share one
#: carrier log per module and tests count INVITEs per number in it: a number drawn twice
#: (1 in 10**7 a pair, but hundreds are drawn) counted another test's INVITE as this
#: one's, and a CI run paused a campaign one dial early.
_issued: set[str] = set()


def _fresh(draw: Callable[[], str]) -> str:
    while (value := draw()) in _issued:
        pass
    _issued.add(value)
    return value


def number(suffix: str) -> str:
    """A 12-digit number never used before in this run, ending in ``suffix``."""
    return _fresh(lambda: "91" + "".join(secrets.choice("0123456789")
                                         for _ in range(10 - len(suffix))) + suffix)


def extension(suffix: str) -> str:
    """A 6-digit agent extension never used before in this run, ending in ``suffix``."""
    return _fresh(lambda: "".join(secrets.choice("123456789")
                                  for _ in range(6 - len(suffix))) + suffix)


CALLER_ID = "15168148111"
