"""Error texts say once what is missing and where."""

from __future__ import annotations

from nbfeatures.errors import FeatureNotFound


def test_a_missing_feature_of_an_existing_family_lists_what_it_has() -> None:
    error = FeatureNotFound("x", 1, feature="nope", known=("a", "b"))
    assert str(error) == "feature x@v1:nope not found (family x v1 has: a, b)"
    assert (error.name, error.version, error.feature) == ("x", 1, "nope")


def test_versions_read_as_v_numbers_and_aliases_as_themselves() -> None:
    assert str(FeatureNotFound("x", 3)) == "feature family x@v3 not found"
    assert str(FeatureNotFound("x")) == "feature family x not found"
    assert str(FeatureNotFound("x", "production")) == "feature family x@production not found"
    detailed = FeatureNotFound("x", 2, "not in the online store")
    assert str(detailed) == "feature family x@v2 not found: not in the online store"


def test_a_whole_message_is_kept_as_given() -> None:
    error = FeatureNotFound("x", 2, message="family x v2 is not in the online store")
    assert str(error) == "family x v2 is not in the online store"
    assert error.name == "x" and error.version == 2
