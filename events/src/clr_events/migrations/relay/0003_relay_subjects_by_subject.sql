-- The relay looks subjects up by a list (subject = ANY(...)) within one relay. With the
-- relay first in the key, a plan made while the table was small (a connection's cached
-- generic plan) read every subject of the relay and filtered: a cost per batch that grew
-- with the number of subjects (1-2 ms at 3,000). With the subject first, the list is the
-- index condition in every plan.
ALTER TABLE {schema}.relay_subjects DROP CONSTRAINT relay_subjects_pkey;
ALTER TABLE {schema}.relay_subjects ADD PRIMARY KEY (subject, relay);
