"""Every read model of the service, by name."""

from __future__ import annotations

from projections.core import ReadModel
from projections.read_models.experts import ExpertRegister
from projections.read_models.labels import LabelRegister
from projections.read_models.organisations import OrganisationDirectory

READ_MODELS: dict[str, ReadModel] = {
    model.name: model for model in (LabelRegister(), ExpertRegister(), OrganisationDirectory())
}
