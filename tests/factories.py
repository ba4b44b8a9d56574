"""Builders for test data: sensible defaults, every field overridable."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from decimal import Decimal
from typing import Any

from biobank.auth import hash_password
from biobank.barcodes import make_barcode
from biobank.models import (
    Case,
    Cohort,
    CollectionEvent,
    ConsentResponse,
    ConsentTier,
    ImportJob,
    Lesion,
    Participant,
    ParticipantPHI,
    Site,
    Specimen,
    StorageContainer,
    Study,
    User,
)
from biobank.models.vocab import (
    BodySite,
    CollectionProcedure,
    ConsentDecision,
    ConsentScope,
    ContainerKind,
    DiseaseGroup,
    Lineage,
    MaterialType,
    QuantityUnit,
    Role,
    SpecimenStatus,
    StorageTemperature,
)
from biobank.services.users import create_token

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


class Builder:
    """Creates rows directly (no service rules).

    Each row is committed, which inside the test's outer transaction only releases a
    savepoint: a request that fails and rolls back cannot take the test's data with it, and
    the outer rollback still removes everything at the end of the test.
    """

    def __init__(self, session: Any) -> None:
        self.session = session

    def _save(self, obj: Any) -> Any:
        self.session.add(obj)
        self.session.commit()
        return obj

    def site(self, **kw: Any) -> Site:
        n = next(_counter)
        kw.setdefault("code", f"S{n}")
        kw.setdefault("name", f"Site {n}")
        return self._save(Site(**kw))

    def user(
        self,
        username: str | None = None,
        *,
        role: str = "technician",
        sites: list[Site] | None = None,
        password: str = PASSWORD,
        **kw: Any,
    ) -> User:
        username = username or f"user{next(_counter)}"
        return self._save(
            User(
                username=username,
                full_name=username.title(),
                role=Role(role),
                password_hash=hash_password(password),
                sites=sites or [],
                **kw,
            )
        )

    def auth_headers(self, user: User) -> dict[str, str]:
        secret = create_token(user, name="test")
        self.session.commit()
        return {"Authorization": f"Bearer {secret}"}

    def study(self, **kw: Any) -> Study:
        n = next(_counter)
        kw.setdefault("code", f"ST{n}")
        kw.setdefault("title", f"Study {n}")
        study = Study(**kw)
        for pos, scope in enumerate(ConsentScope):
            study.consent_tiers.append(
                ConsentTier(
                    code=scope.name[:8], scope=scope, statement=f"I agree to {scope.value}", position=pos
                )
            )
        return self._save(study)

    def participant(
        self, *, site: Site, study: Study | None = None, phi: bool = True, consent: bool = True, **kw: Any
    ) -> Participant:
        n = next(_counter)
        kw.setdefault("code", f"P-{n:06d}")
        participant = Participant(site=site, study=study or self.study(), **kw)
        if phi:
            participant.phi = ParticipantPHI(
                given_name="Ada",
                family_name=f"Test{n}",
                medical_record_number=f"MRN{n}",
                birth_date=dt.date(1970, 1, 1),
            )
        self._save(participant)
        if consent:
            for tier in participant.study.consent_tiers:
                self._save(
                    ConsentResponse(
                        participant=participant,
                        tier=tier,
                        decision=ConsentDecision.YES,
                        signed_on=dt.date(2024, 1, 1),
                    )
                )
        return participant

    def case(self, *, participant: Participant, **kw: Any) -> Case:
        kw.setdefault("code", f"C-{next(_counter):06d}")
        kw.setdefault("disease_group", DiseaseGroup.MELANOMA)
        kw.setdefault("icd10_code", "C43.5")
        return self._save(Case(participant=participant, **kw))

    def lesion(self, *, case: Case, **kw: Any) -> Lesion:
        kw.setdefault("code", f"L-{next(_counter):06d}")
        kw.setdefault("body_site", BodySite.POSTERIOR_TORSO)
        return self._save(Lesion(case=case, **kw))

    def visit(self, *, participant: Participant, **kw: Any) -> CollectionEvent:
        kw.setdefault("site_id", participant.site_id)
        kw.setdefault("collected_at", dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC))
        kw.setdefault("procedure", CollectionProcedure.VENIPUNCTURE)
        return self._save(CollectionEvent(participant=participant, **kw))

    def cohort(self, *, owner: User, **kw: Any) -> Cohort:
        kw.setdefault("name", f"Cohort {next(_counter)}")
        kw.setdefault("level", "cases")
        kw.setdefault("filters", None)
        return self._save(Cohort(owner_id=owner.id, **kw))

    def import_job(self, *, by: User, **kw: Any) -> ImportJob:
        kw.setdefault("template", "master")
        kw.setdefault("filename", f"file{next(_counter)}.csv")
        kw.setdefault("sha256", hashlib.sha256(kw["filename"].encode()).hexdigest())
        kw.setdefault("size_bytes", 100)
        return self._save(ImportJob(created_by_id=by.id, created_by_name=by.username, **kw))

    def container(
        self,
        *,
        site: Site,
        kind: ContainerKind = ContainerKind.BOX,
        parent: StorageContainer | None = None,
        **kw: Any,
    ) -> StorageContainer:
        kw.setdefault("name", f"{kind.value} {next(_counter)}")
        if kind is ContainerKind.BOX:
            kw.setdefault("n_rows", 9)
            kw.setdefault("n_cols", 9)
        if parent is None and kind is not ContainerKind.FREEZER:
            freezer = self.container(
                site=site, kind=ContainerKind.FREEZER, temperature=StorageTemperature.MINUS_60_85
            )
            parent = self.container(site=site, kind=ContainerKind.RACK, parent=freezer)
        return self._save(StorageContainer(site=site, kind=kind, parent=parent, **kw))

    def box(self, *, site: Site, **kw: Any) -> StorageContainer:
        return self.container(site=site, kind=ContainerKind.BOX, **kw)

    #: whether specimens are made with their first custody event (see :meth:`specimen`)
    history = False

    def specimen(self, *, participant: Participant, history: bool | None = None, **kw: Any) -> Specimen:
        """A specimen; with *history*, recorded with its first custody event as the LIMS
        records every one (without, it has none: tests that count or write the chain
        themselves, and the ledger's check reports it)."""
        material = kw.setdefault("material_type", MaterialType.PLASMA)
        kw.setdefault("barcode", make_barcode("T", material, next(_counter)))
        kw.setdefault("site_id", participant.site_id)
        kw.setdefault(
            "status", SpecimenStatus.IN_STORAGE if kw.get("container") else SpecimenStatus.COLLECTED
        )
        kw.setdefault("quantity", Decimal("1.000"))
        kw.setdefault("initial_quantity", kw["quantity"])
        kw.setdefault("unit", QuantityUnit.ML)
        if kw.get("parent") is not None:
            kw.setdefault("lineage", Lineage.ALIQUOT)
        specimen = self._save(Specimen(participant=participant, **kw))
        if (self.history if history is None else history) and specimen.status is not SpecimenStatus.EXPECTED:
            from biobank.models.vocab import CustodyEventType
            from biobank.services.custody import record_custody_event

            kind = {
                Lineage.PRIMARY: CustodyEventType.COLLECTED,
                Lineage.ALIQUOT: CustodyEventType.ALIQUOTED,
                Lineage.DERIVATIVE: CustodyEventType.DERIVED,
            }[specimen.lineage]
            record_custody_event(specimen, kind, actor=None)
            self.session.commit()
        return specimen
