"""The portal's content form puts a service's refusal where the member can see what it is about: the services
key the parts of a field by dotted path, as the API answers them."""

import pytest
from django.core.exceptions import ValidationError

from listings.forms import ProductContentForm, dictionary_formset
from listings.selectors import category_list

pytestmark = pytest.mark.django_db


def _bound():
    form = ProductContentForm({"title_en": "Ports"}, categories=category_list())
    formset = dictionary_formset(
        {
            "dictionary-TOTAL_FORMS": "3", "dictionary-INITIAL_FORMS": "0",
            "dictionary-0-name": "port", "dictionary-0-type": "string",
            "dictionary-1-name": "", "dictionary-1-type": "",  # a blank row of the table, ignored
            "dictionary-2-name": "ships", "dictionary-2-type": "integer",
        }
    )  # fmt: skip
    form.is_valid()
    formset.is_valid()
    return form, formset


def test_service_errors_land_on_the_field_they_name():
    # given a submitted content form and its dictionary table
    form, formset = _bound()

    # when the service refuses parts of the dictionary, of the licence terms and of a list
    form.add_service_errors(
        ValidationError(
            {
                "dictionary.1.name": ["The name is used twice."],  # the second filled row: the table's third
                "dictionary.7.type": ["No such row."],
                "licence_terms.duration_months": ["Too long."],
                "origin_countries.0": ["Unknown country: XX."],
                "important_source": ["Say why the data is important."],
            }
        ),
        formset,
    )

    # then each message is next to what it is about
    assert formset.forms[2].errors["name"] == ["The name is used twice."]
    assert "No such row." in formset.non_form_errors()
    assert "Too long." in form.errors["duration_months"]
    assert "Unknown country: XX." in form.errors["origin_countries"]
    assert "Say why the data is important." in form.errors["important_source"]
