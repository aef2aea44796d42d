-- Per relay and subject: the public version the subject's last published event carried
-- (ce_publicversion, gapless per subject), recorded with the checkpoint.
CREATE TABLE IF NOT EXISTS {schema}.relay_subjects (
    relay text NOT NULL, subject text NOT NULL, version bigint NOT NULL,
    PRIMARY KEY (relay, subject)
);
