import pytest
from django.core.exceptions import ValidationError

from exchange.validators import validate_lei, validate_uscc

# Real codes published in companies' business licences and the GLEIF register.
REAL_USCCS = [
    "911100007109288314",  # China Petroleum & Chemical Corporation (Sinopec)
    "91330100716105852F",  # Alibaba (China) Co., Ltd.
    "9144030071526726XG",  # Shenzhen Tencent Computer Systems Co., Ltd.
]
REAL_LEIS = [
    "529900T8BM49AURSDO55",  # Deutsche Börse AG
    "HWUPKR0MPOU8FGXBT394",  # Apple Inc.
    "7LTWFZYICNSX8D621K86",  # Deutsche Bank AG
]


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_usccs_are_valid(code):
    validate_uscc(code)


@pytest.mark.parametrize(
    "code, error",
    [
        ("911100007109288315", "uscc_checksum"),  # last character changed
        ("91330100716105852X", "uscc_checksum"),
        ("9144030071526726X", "uscc_format"),  # 17 characters
        ("9144030071526726XGG", "uscc_format"),  # 19 characters
        ("91440300715267I6XG", "uscc_format"),  # I is not in the code's alphabet
    ],
)
def test_invalid_usccs_are_refused_with_a_reason(code, error):
    with pytest.raises(ValidationError) as exc:
        validate_uscc(code)
    assert exc.value.code == error


@pytest.mark.parametrize("code", REAL_LEIS)
def test_real_leis_are_valid(code):
    validate_lei(code)


@pytest.mark.parametrize(
    "code, error",
    [
        ("529900T8BM49AURSDO56", "lei_checksum"),
        ("HWUPKR0MPOU8FGXBT349", "lei_checksum"),  # check digits swapped
        ("529900T8BM49AURSDO5", "lei_format"),
        ("529900T8BM49AURSD-55", "lei_format"),
    ],
)
def test_invalid_leis_are_refused_with_a_reason(code, error):
    with pytest.raises(ValidationError) as exc:
        validate_lei(code)
    assert exc.value.code == error


def test_lower_case_is_accepted_and_the_firm_stores_upper_case():
    validate_uscc("9144030071526726xg")
    validate_lei("529900t8bm49aursdo55")


def test_empty_values_are_left_to_the_model_rules():
    validate_uscc("")
    validate_lei("")
