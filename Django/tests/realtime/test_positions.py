import pytest

from realtime.positions import BadPosition, Position, position_from_query


@pytest.mark.parametrize(
    ("query", "position"),
    [
        (b"", None),
        (b"epoch=ab12&offset=7", Position("ab12", 7)),
        (b"offset=0", Position("", 0)),
        (b"epoch=e&offset=3&offset=5", Position("e", 5)),
    ],
)
def test_a_position_from_the_query_string(query, position):
    assert position_from_query(query) == position


@pytest.mark.parametrize(
    "query", [b"epoch=e&offset=-1", b"epoch=e&offset=x", b"offset=", b"offset=1" + b"0" * 20]
)
def test_a_bad_position_is_refused_with_what_was_wrong(query):
    with pytest.raises(BadPosition, match="bad resume position"):
        position_from_query(query)
