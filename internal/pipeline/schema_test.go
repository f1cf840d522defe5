package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSchema(t *testing.T) {
	t.Parallel()
	raw := Schema()
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", s["$schema"])
	}
	props := s["properties"].(map[string]any)
	for _, f := range pipelineFields {
		if _, ok := props[f]; !ok {
			t.Errorf("schema lacks top-level field %s", f)
		}
	}
	action := s["$defs"].(map[string]any)["action"].(map[string]any)["properties"].(map[string]any)
	for _, f := range actionFields {
		if _, ok := action[f]; !ok {
			t.Errorf("schema lacks action field %s", f)
		}
	}
	text := string(raw)
	for _, spec := range BuiltinProviders() {
		if !strings.Contains(text, `"const": "`+spec.Provider+`"`) {
			t.Errorf("schema lacks provider %s", spec.Provider)
		}
		for _, p := range spec.Properties {
			if !strings.Contains(text, `"`+p.Name+`": {`) {
				t.Errorf("schema lacks property %s of %s", p.Name, spec.Provider)
			}
		}
	}
	if !strings.Contains(text, "\n  \"") {
		t.Error("schema is not indented")
	}
}

// TestSchemaCustomProvider checks that providers given by option appear in the schema.
func TestSchemaCustomProvider(t *testing.T) {
	t.Parallel()
	specs := append(BuiltinProviders(), ProviderSpec{Categories: []Category{Invoke}, Provider: "Webhook",
		Properties: []Property{{Name: "url", Type: TypeString, Required: true}}})
	if text := string(Schema(WithProviders(specs))); !strings.Contains(text, `"const": "Webhook"`) || !strings.Contains(text, `"url"`) {
		t.Error("schema lacks the Webhook provider")
	}
}
