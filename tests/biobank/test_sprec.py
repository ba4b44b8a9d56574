"""SPREC codes derived from recorded history (the pure part)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from biobank.sprec import (
    PRIMARY_CONTAINERS,
    SNOMED_SAMPLE_TYPES,
    ProcessingStep,
    derive_sprec,
    initial_code,
    sprec_text,
    validate_sprec,
)

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def code(**kw):
    elements = derive_sprec(**kw)
    return None if elements is None else sprec_text(elements)


def test_plasma_delay_comes_from_collection_to_centrifugation_and_its_temperature():
    spin = ProcessingStep("PLASMA", T0 + dt.timedelta(minutes=90), "centrifugation 2,000 g", "RT")
    assert (
        code(material="PLASMA", collected_at=T0, procedure="venipuncture", steps=[spin], frozen_at=None)
        == "PL1-XXX-A-X-N-X-X"
    )
    cold_late = ProcessingStep("PLASMA", T0 + dt.timedelta(hours=5), "centrifugation", "4 °C")
    assert (
        code(material="PLASMA", collected_at=T0, procedure="venipuncture", steps=[cold_late], frozen_at=None)
        == "PL1-XXX-F-X-N-X-X"
    )
    # an aliquot of that plasma inherits the centrifugation of its parent
    aliquot = ProcessingStep("PLASMA")
    assert code(
        material="PLASMA", collected_at=T0, procedure="venipuncture", steps=[spin, aliquot], frozen_at=None
    ).startswith("PL1-XXX-A-")
    double = ProcessingStep("PLASMA", T0 + dt.timedelta(hours=30), "double spin", "RT")
    assert (
        code(material="PLASMA", collected_at=T0, procedure="venipuncture", steps=[double], frozen_at=None)
        == "PL2-XXX-K-X-X-X-X"
    )
    # no temperature, no delay code
    assert (
        code(
            material="SERUM",
            collected_at=T0,
            procedure="venipuncture",
            steps=[ProcessingStep("SERUM", T0)],
            frozen_at=None,
        )
        == "SER-XXX-X-X-N-X-X"
    )


def test_the_code_known_at_collection_and_its_primary_tube_kept_by_derivation():
    assert (
        initial_code(material="WHOLE_BLOOD", container="PED", procedure="venipuncture") == "BLD-PED-X-X-X-X-X"
    )
    assert initial_code(material="URINE", container="not a tube", procedure=None) == "URN-XXX-X-X-X-X-X"
    assert (
        initial_code(material="TISSUE_FROZEN", container="PED", procedure="wide_local_excision")
        == "TIS-SRG-X-X-X-X-X"
    )
    assert initial_code(material="DNA", container="PED", procedure=None) is None
    for tube in PRIMARY_CONTAINERS:
        assert validate_sprec(initial_code(material="SERUM", container=tube, procedure=None)) is None
    # the tube recorded at collection is what the records say; an unknown one stays unknown
    spin = ProcessingStep("SERUM", T0 + dt.timedelta(minutes=30), "centrifugation", "RT")
    elements = derive_sprec(
        material="SERUM",
        collected_at=T0,
        procedure="venipuncture",
        steps=[spin],
        frozen_at=None,
        recorded="SER-SST-X-X-X-X-X",
    )
    assert sprec_text(elements) == "SER-SST-A-X-N-X-X"
    assert not any(e.differs for e in elements)
    assert code(
        material="SERUM",
        collected_at=T0,
        procedure="venipuncture",
        steps=[spin],
        frozen_at=None,
        recorded="SER-ZZZ-X-X-X-X-X",
    ).startswith("SER-XXX-")


def test_uncentrifuged_fluids_and_tissue():
    assert (
        code(material="WHOLE_BLOOD", collected_at=T0, procedure="venipuncture", steps=[], frozen_at=None)
        == "BLD-XXX-X-N-N-X-X"
    )
    frozen = code(
        material="TISSUE_FROZEN",
        collected_at=T0,
        procedure="wide_local_excision",
        steps=[],
        frozen_at=T0 + dt.timedelta(minutes=25),
    )
    assert frozen == "TIS-SRG-X-D-SNP-X-X"
    ffpe = code(
        material="TISSUE_PARAFFIN_EMBEDDED",
        collected_at=T0,
        procedure="punch_biopsy",
        steps=[
            ProcessingStep(
                "TISSUE_PARAFFIN_EMBEDDED", T0 + dt.timedelta(minutes=5), "10% neutral buffered formalin"
            )
        ],
        frozen_at=None,
    )
    assert ffpe == "TIS-XXX-X-B-NBF-X-X"
    assert code(material="DNA", collected_at=T0, procedure="venipuncture", steps=[], frozen_at=None) is None
    for derived in (frozen, ffpe):
        assert validate_sprec(derived) is None


def test_elements_say_what_they_come_from_and_where_the_stored_code_disagrees():
    elements = derive_sprec(
        material="TISSUE_FROZEN",
        collected_at=T0,
        procedure="excision",
        steps=[],
        frozen_at=T0 + dt.timedelta(minutes=25),
        recorded="TIS-SRG-A-B-SNP-Z-C",
    )
    by_name = {e.name: e for e in elements}
    assert by_name["cold ischemia time"].basis == "25 min from collection to freezing"
    assert by_name["cold ischemia time"].differs  # stored B (2–10 min), records say D
    assert not by_name["type of collection"].differs
    assert not by_name["warm ischemia time"].differs  # unknown (X) contradicts nothing


def test_sample_types_are_the_published_sprec_to_snomed_map():
    """Each SPREC fluid type's SNOMED CT code and display as the MII biobank module's
    ConceptMap gives them (fixtures/sprec); TIS, DNA and RNA are outside that map."""
    path = (
        Path(__file__).parents[2]
        / "fixtures"
        / "sprec"
        / "ConceptMap-mii-cm-biobank-sample-type-sprec-sct.json"
    )
    published = {
        element["code"]: element["target"][0]
        for group in json.loads(path.read_text())["group"]
        for element in group["element"]
    }
    checked = 0
    for sprec, ours in SNOMED_SAMPLE_TYPES.items():
        if sprec in published:
            target = published[sprec]
            display = target["display"].strip().removesuffix(" (specimen)").removesuffix(" (cell)")
            assert ours == (target["code"], display), sprec
            checked += 1
    assert checked == 8
