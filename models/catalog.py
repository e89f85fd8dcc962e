"""What can be repaired, and which certificates a technician needs to repair it."""

from enum import StrEnum


class Category(StrEnum):
    AIR_CONDITIONER = "air_conditioner"
    REFRIGERATOR = "refrigerator"
    WASHING_MACHINE = "washing_machine"
    TELEVISION = "television"
    WATER_HEATER = "water_heater"
    RANGE_HOOD = "range_hood"
    GAS_STOVE = "gas_stove"
    SMALL_APPLIANCE = "small_appliance"
    ELECTRICAL = "electrical"
    PLUMBING = "plumbing"


class CertificateType(StrEnum):
    ELECTRICIAN = "electrician"
    PLUMBER = "plumber"
    GAS = "gas"
    APPLIANCE_REPAIR = "appliance_repair"


_TRADE_CERTIFICATES = {
    Category.ELECTRICAL: CertificateType.ELECTRICIAN,
    Category.PLUMBING: CertificateType.PLUMBER,
}


def required_certificates(
    category: Category, gas_fired: bool = False
) -> frozenset[CertificateType]:
    """Certificates a technician must hold, all of them, to take a job in `category`.

    `gas_fired` only matters for water heaters: a gas stove is always gas work.
    """
    trade = _TRADE_CERTIFICATES.get(category, CertificateType.APPLIANCE_REPAIR)
    burns_gas = category is Category.GAS_STOVE or (category is Category.WATER_HEATER and gas_fired)
    return frozenset({trade, CertificateType.GAS} if burns_gas else {trade})
