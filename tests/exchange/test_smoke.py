from exchange.selectors import board_ids_tradable, board_ids_visible


def test_personas_see_their_boards(domestic, international, provider, unadmitted, boards):
    assert board_ids_visible(user=domestic) == {boards["domestic"].id}
    assert board_ids_visible(user=international) == {boards["international"].id}
    assert board_ids_tradable(user=provider) == {boards["domestic"].id, boards["international"].id}
    assert board_ids_visible(user=unadmitted) == frozenset()
