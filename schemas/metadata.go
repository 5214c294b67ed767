package schemas

import (
	"encoding/json/jsontext"
	"slices"
)

// Metadata is a job's string labels (tenant, tier, task, custom_id and the
// caller's own), carried from the Job to its Result and telemetry.
//
// It encodes exactly as a map[string]string does under encoding/json (keys
// sorted, the call's string escaping, nil as null), without the two
// allocations per entry the reflective map encoder makes.
type Metadata map[string]string

// MarshalJSONTo writes the labels as a JSON object with sorted keys.
func (m Metadata) MarshalJSONTo(enc *jsontext.Encoder) error {
	if m == nil {
		return enc.WriteToken(jsontext.Null)
	}
	var onStack [8]string
	keys := onStack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if err := enc.WriteToken(jsontext.BeginObject); err != nil {
		return err
	}
	for _, k := range keys {
		if err := enc.WriteToken(jsontext.String(k)); err != nil {
			return err
		}
		if err := enc.WriteToken(jsontext.String(m[k])); err != nil {
			return err
		}
	}
	return enc.WriteToken(jsontext.EndObject)
}
