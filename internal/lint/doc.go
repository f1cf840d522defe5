// Package lint finds the classic mistakes in a valid pipeline file: the ones the CodePipeline
// guides warn about (a production deploy without an approval, generic artifact names, builds in
// the source stage, secrets in plain values) and a few more. They are warnings, not errors: the
// pipeline runs as it is. Check decides; text.go and sarif.go write the findings for people and
// for code-scanning tools. The positions come from pipeline.ParseWithPositions.
package lint
