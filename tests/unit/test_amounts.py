"""Sums of money and counted things in the languages of the news (@money, @quantity) and the numbers inside them."""

from __future__ import annotations

import pytest

from monitor.rules.amounts import amounts, find_money, find_quantities


@pytest.mark.parametrize("text, value, numbers", [
    ("a package of $40-50 billion for Kyiv", "$40-50 billion", {40e9, 50e9}),
    ("up to €1bn in aid", "up to €1bn", {1e9}),
    ("a $2.3bn package", "$2.3bn", {2.3e9}),
    ("more than $800 million more", "more than $800 million", {800e6}),
    ("up to $350\u00a0million in defense articles", "up to $350 million", {350e6}),
    ("$5 to 10 billion", "$5 to 10 billion", {5e9, 10e9}),
    ("Hilfe über 1,2 Milliarden Euro", "über 1,2 Milliarden Euro", {1.2e9}),
    ("für 2 Mrd. Euro", "2 Mrd. Euro", {2e9}),
    ("une aide de 6,5 milliards de couronnes", "6,5 milliards de couronnes", {6.5e9}),
    ("500 millions d'euros", "500 millions d'euros", {500e6}),
    ("en pakke på 2 mia. kr.", "2 mia. kr", {2e9}),
    ("10 mln zł", "10 mln zł", {10e6}),
    ("пакет на 300 млн доларів", "300 млн доларів", {300e6}),
    ("a three-digit million euro sum", "three-digit million euro sum", set()),
    ("PLEDGES OF HUNDREDS OF MILLIONS OF EUROS", "HUNDREDS OF MILLIONS OF EUROS", set()),  # a headline in capitals
    ("eine dreistellige Millionensumme", "dreistellige Millionensumme", set()),
    ("un paquete de 2.500 millones de dólares", "2.500 millones de dólares", {2.5e9}),
    ("ayuda por 5 mil millones de euros", "5 mil millones de euros", {5e9}),  # Spanish "mil millones": a billion
    ("hasta 300 millones de euros", "hasta 300 millones de euros", {300e6}),
    ("1 millón de euros", "1 millón de euros", {1e6}),
    ("aiuti per 1,5 miliardi di euro", "1,5 miliardi di euro", {1.5e9}),
    ("oltre 500 milioni di euro", "oltre 500 milioni di euro", {500e6}),
    ("um pacote de 500 milhões de euros", "500 milhões de euros", {500e6}),
    ("ajuda de 2 bilhões de dólares", "2 bilhões de dólares", {2e9}),  # Brazilian: a billion
    ("cerca de 1,5 mil milhões de euros", "cerca de 1,5 mil milhões de euros", {1.5e9}),  # European Portuguese
    ("ett stödpaket värt 6,5 miljarder kronor", "6,5 miljarder kronor", {6.5e9}),
    ("för 300 miljoner kronor", "300 miljoner kronor", {300e6}),
    ("un paquete de 500 millones de libras", "500 millones de libras", {500e6}),  # pounds sterling ...
    ("aiuti per 500 milioni di sterline", "500 milioni di sterline", {500e6}),
    ("un paquet de 2 milliards de livres sterling", "2 milliards de livres sterling", {2e9}),
    ("een pakket van 300 miljoen pond", "300 miljoen pond", {300e6}),
    ("pakiet o wartości 2,3 mld funtów", "2,3 mld funtów", {2.3e9}),
    ("пакет на 100 млн фунтов", "100 млн фунтов", {100e6}),
    ("pakiet wart 250 mln dol. dla Ukrainy", "250 mln dol", {250e6}),  # ... and the Polish dollar
    ("o wartości 3 007 800 000 koron", "3 007 800 000 koron", {3_007_800_000}),  # crowns in Polish ...
    ("на 13,5 млрд. шведських крон, передає", "13,5 млрд. шведських крон", {13.5e9}),  # ... named by their country
    ("worth 13.5 billion Swedish kronor", "13.5 billion Swedish kronor", {13.5e9}),
    ("на 2 млрд злотих", "2 млрд злотих", {2e9}),
    ("300 Millionen kanadische Dollar an neuer Hilfe", "300 Millionen kanadische Dollar", {300e6}),  # dollars too
    ("на 47 млн канадських доларів", "47 млн канадських доларів", {47e6}),
])
def test_money_in_every_form(text, value, numbers):
    (found,) = [v for _s, _e, v in find_money(text)]
    assert found == value
    assert amounts(found) == {round(n) for n in numbers}


def test_two_sums_side_by_side_are_two_values():
    assert [v for _s, _e, v in find_money("24.4 million euros ($26 million)")] == ["24.4 million euros",
                                                                                  "$26 million"]


@pytest.mark.parametrize("text, found", [
    ("14 Leopard-2 battle tanks", ["14 Leopard-2 battle tanks"]),
    ("dozens of drones", ["dozens of drones"]),
    ("40 Marder-Schützenpanzer", ["40 Marder-Schützenpanzer"]),
    ("zehn Kampfpanzer", ["zehn Kampfpanzer"]),
    ("Leopard 2 tanks", []),  # the number is part of the name
    ("155 mm shells", []),  # a calibre
    ("in 2023 tanks", []),  # a year
    ("to send Leopard tanks", []),  # "to" is Danish for two, not an English number
    ("six canons Caesar", ["six canons"]),
    ("seis tanques y diez vehículos blindados", ["seis tanques", "diez vehículos"]),
    ("cientos de drones", ["cientos de drones"]),
    ("altri 14 carri armati e cinque sistemi", ["14 carri", "cinque sistemi"]),
    ("três tanques Leopard e dez veículos blindados", ["três tanques", "dez veículos"]),
    ("tio stridsvagnar och fyra haubitsar", ["tio stridsvagnar", "fyra haubitsar"]),
    ("a entrega dos tanques Leopard", []),  # Portuguese "dos" is "of the", not Spanish "two"
    ("due to Russian missiles", []),  # nor is English "due" Italian "two"
])
def test_quantities(text, found):
    assert [v for _s, _e, v in find_quantities(text)] == found
