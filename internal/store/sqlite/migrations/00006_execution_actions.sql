-- The actions of an execution are stored a row each, apart from its document, so a step
-- writes the actions it changed, not all of them: for a pipeline of 100 actions the whole
-- document is some 30 KB, one action some 300 bytes. executions.doc keeps the rest; its
-- stages' "actions" are no longer read (rows written before this migration still hold them).

-- +goose Up
CREATE TABLE execution_actions (
    execution_id TEXT    NOT NULL,
    stage        INTEGER NOT NULL, -- index of the stage in the execution
    idx          INTEGER NOT NULL, -- index of the action in the stage
    doc          TEXT    NOT NULL,
    PRIMARY KEY (execution_id, stage, idx)
) STRICT, WITHOUT ROWID;

INSERT INTO execution_actions (execution_id, stage, idx, doc)
SELECT e.id, st.key, a.key, a.value
FROM executions AS e, json_each(e.doc, '$.stages') AS st, json_each(st.value, '$.actions') AS a;

-- +goose Down
DROP TABLE execution_actions;
