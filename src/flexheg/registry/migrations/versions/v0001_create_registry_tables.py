"""Create the registry tables

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "census_imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_census_imports")),
    )
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entity_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("old", sa.Text(), nullable=False),
        sa.Column("new", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_changes_entity_id"), ["entity_id"], unique=False)

    op.create_table(
        "inspection_rounds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seed", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("population", sa.BigInteger(), nullable=False),
        sa.Column("strata", sa.Text(), nullable=False),
        sa.Column("selection_digest", sa.String(length=71), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_rounds")),
    )
    op.create_table(
        "oversight_draws",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("seed", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oversight_draws")),
    )
    op.create_table(
        "parties",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("keyid", sa.String(length=128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_parties")),
    )
    op.create_table(
        "principals",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("token_digest", sa.String(length=71), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_principals")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_principals_token_digest")),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("risk_weight", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("identity_keyid", sa.String(length=128), nullable=True),
        sa.Column("identity_key", sa.Text(), nullable=True),
        sa.Column("manufacturer", sa.String(length=128), nullable=True),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("last_attested_at", sa.BigInteger(), nullable=True),
        sa.Column("attestation_count", sa.Integer(), nullable=False),
        sa.Column("away_since", sa.BigInteger(), nullable=True),
        sa.Column("custody_problem", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["census_imports.id"], name=op.f("fk_entities_import_id_census_imports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("identity_keyid", name=op.f("uq_entities_identity_keyid")),
    )
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entities_import_id"), ["import_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_entities_kind"), ["kind"], unique=False)
        batch_op.create_index(
            "ix_entities_kind_attested", ["kind", "status", "last_attested_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_entities_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_entities_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_entities_status"), ["status"], unique=False)

    op.create_table(
        "custody_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("from_party", sa.String(length=128), nullable=False),
        sa.Column("to_party", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("tick", sa.BigInteger(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["entities.id"], name=op.f("fk_custody_records_device_id_entities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_records")),
    )
    with op.batch_alter_table("custody_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_custody_records_device_id"), ["device_id"], unique=False)

    op.create_table(
        "inspections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.Column("entity_id", sa.String(length=128), nullable=False),
        sa.Column("stratum", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("seen", sa.Boolean(), nullable=True),
        sa.Column("seals_intact", sa.Boolean(), nullable=True),
        sa.Column("power_log_checked", sa.Boolean(), nullable=True),
        sa.Column("power_log_head", sa.String(length=71), nullable=True),
        sa.Column("power_log_count", sa.Integer(), nullable=True),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("inspector", sa.String(length=128), nullable=True),
        sa.Column("recorded_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["entities.id"], name=op.f("fk_inspections_entity_id_entities")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["inspection_rounds.id"], name=op.f("fk_inspections_round_id_inspection_rounds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
        sa.UniqueConstraint("round_id", "entity_id", name=op.f("uq_inspections_round_id")),
    )
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspections_entity_id"), ["entity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_inspections_round_id"), ["round_id"], unique=False)

    op.create_table(
        "license_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("licensing_state", sa.String(length=128), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=True),
        sa.Column("not_before", sa.BigInteger(), nullable=True),
        sa.Column("not_after", sa.BigInteger(), nullable=True),
        sa.Column("envelope", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["entities.id"], name=op.f("fk_license_decisions_device_id_entities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_license_decisions")),
    )
    with op.batch_alter_table("license_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_license_decisions_device_id"), ["device_id"], unique=False)

    op.create_table(
        "location_observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("distance_km", sa.Float(), nullable=False),
        sa.Column("contradicts", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["entities.id"], name=op.f("fk_location_observations_device_id_entities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_location_observations")),
    )
    with op.batch_alter_table("location_observations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_location_observations_device_id"), ["device_id"], unique=False)

    op.create_table(
        "power_off_periods",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("off_tick", sa.BigInteger(), nullable=False),
        sa.Column("on_tick", sa.BigInteger(), nullable=True),
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("explained_by", sa.String(length=128), nullable=True),
        sa.Column("explained_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["entities.id"], name=op.f("fk_power_off_periods_device_id_entities")
        ),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_power_off_periods_inspection_id_inspections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_power_off_periods")),
        sa.UniqueConstraint("device_id", "off_tick", name=op.f("uq_power_off_periods_device_id")),
    )
    with op.batch_alter_table("power_off_periods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_power_off_periods_device_id"), ["device_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("power_off_periods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_power_off_periods_device_id"))

    op.drop_table("power_off_periods")
    with op.batch_alter_table("location_observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_location_observations_device_id"))

    op.drop_table("location_observations")
    with op.batch_alter_table("license_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_license_decisions_device_id"))

    op.drop_table("license_decisions")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspections_round_id"))
        batch_op.drop_index(batch_op.f("ix_inspections_entity_id"))

    op.drop_table("inspections")
    with op.batch_alter_table("custody_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_custody_records_device_id"))

    op.drop_table("custody_records")
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entities_status"))
        batch_op.drop_index(batch_op.f("ix_entities_site_id"))
        batch_op.drop_index(batch_op.f("ix_entities_owner"))
        batch_op.drop_index("ix_entities_kind_attested")
        batch_op.drop_index(batch_op.f("ix_entities_kind"))
        batch_op.drop_index(batch_op.f("ix_entities_import_id"))

    op.drop_table("entities")
    op.drop_table("principals")
    op.drop_table("parties")
    op.drop_table("oversight_draws")
    op.drop_table("inspection_rounds")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_changes_entity_id"))

    op.drop_table("changes")
    op.drop_table("census_imports")
