"""Identifier validators, built on python-stdnum's implementations of the standards."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from stdnum import lei as stdnum_lei
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum
from stdnum.exceptions import ValidationError as StdnumError


def validate_uscc(value: str) -> None:
    """A Unified Social Credit Code: 18 characters, check character per GB 32100-2015."""
    if not value:
        return
    try:
        stdnum_uscc.validate(value)
    except InvalidChecksum:
        raise ValidationError(
            _("The check character of this Unified Social Credit Code is wrong."), code="uscc_checksum"
        ) from None
    except StdnumError:
        raise ValidationError(
            _("A Unified Social Credit Code has 18 characters: digits and capital letters."), code="uscc_format"
        ) from None


_LEI_SHAPE = re.compile(r"^[0-9A-Z]{18}[0-9]{2}$")


def validate_lei(value: str) -> None:
    """A Legal Entity Identifier: 20 characters, ISO 17442 (ISO 7064 mod 97-10 check digits)."""
    if not value:
        return
    # stdnum checks the check digits only; the shape (18 alphanumerics and two digits) is ours to check.
    if not _LEI_SHAPE.match(value.strip().upper()):
        raise ValidationError(_("An LEI has 20 characters: digits and capital letters."), code="lei_format")
    try:
        stdnum_lei.validate(value)
    except InvalidChecksum:
        raise ValidationError(_("The check digits of this LEI are wrong."), code="lei_checksum") from None
    except StdnumError:
        raise ValidationError(_("An LEI has 20 characters: digits and capital letters."), code="lei_format") from None
