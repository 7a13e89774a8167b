-- The schema that mersemi wrote before migrations existed (schema_version 1), as SQLite holds it.
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE classes (
	id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);

CREATE TABLE rounds (
	id INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	config TEXT NOT NULL, 
	config_name VARCHAR(255) NOT NULL, 
	thresholds TEXT NOT NULL, 
	auto_accept BOOLEAN NOT NULL, 
	composition TEXT, 
	metrics TEXT, 
	checkpoint TEXT, 
	error TEXT, 
	pid INTEGER, 
	host VARCHAR(255), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_rounds_status ON rounds (status);

CREATE TABLE samples (
	id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	split VARCHAR(16) NOT NULL, 
	gold_label INTEGER, 
	true_label INTEGER, 
	text TEXT, 
	media TEXT, 
	PRIMARY KEY (id), 
	UNIQUE (name), 
	FOREIGN KEY(gold_label) REFERENCES classes (id), 
	FOREIGN KEY(true_label) REFERENCES classes (id)
);

CREATE INDEX ix_samples_split ON samples (split);

CREATE TABLE thresholds (
	class_id INTEGER NOT NULL, 
	value FLOAT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	updated_by VARCHAR(128), 
	PRIMARY KEY (class_id), 
	FOREIGN KEY(class_id) REFERENCES classes (id)
);

CREATE TABLE predictions (
	round_id INTEGER NOT NULL, 
	sample_id INTEGER NOT NULL, 
	kind VARCHAR(8) NOT NULL, 
	predicted INTEGER NOT NULL, 
	confidence FLOAT NOT NULL, 
	probs BLOB NOT NULL, 
	PRIMARY KEY (round_id, sample_id), 
	FOREIGN KEY(round_id) REFERENCES rounds (id), 
	FOREIGN KEY(sample_id) REFERENCES samples (id), 
	FOREIGN KEY(predicted) REFERENCES classes (id)
);

CREATE INDEX ix_pred_conf ON predictions (round_id, kind, confidence);

CREATE INDEX ix_pred_class_conf ON predictions (round_id, kind, predicted, confidence, sample_id);

CREATE TABLE decisions (
	id INTEGER NOT NULL, 
	sample_id INTEGER NOT NULL, 
	round_id INTEGER, 
	action VARCHAR(8) NOT NULL, 
	label INTEGER, 
	undoes INTEGER, 
	batch VARCHAR(32) NOT NULL, 
	reviewer VARCHAR(128) NOT NULL, 
	created_at DATETIME NOT NULL, 
	note TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(sample_id) REFERENCES samples (id), 
	FOREIGN KEY(round_id) REFERENCES rounds (id), 
	FOREIGN KEY(label) REFERENCES classes (id), 
	FOREIGN KEY(undoes) REFERENCES decisions (id)
);

CREATE INDEX ix_decisions_batch ON decisions (batch);

CREATE INDEX ix_decisions_sample_id ON decisions (sample_id);

CREATE TABLE current_decisions (
	sample_id INTEGER NOT NULL, 
	decision_id INTEGER NOT NULL, 
	action VARCHAR(8) NOT NULL, 
	label INTEGER, 
	PRIMARY KEY (sample_id), 
	FOREIGN KEY(sample_id) REFERENCES samples (id), 
	FOREIGN KEY(decision_id) REFERENCES decisions (id), 
	FOREIGN KEY(label) REFERENCES classes (id)
);

CREATE INDEX ix_current_action_label ON current_decisions (action, label);

