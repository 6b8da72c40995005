'use strict';
// Differential test of the FHIRPath subset used by `images.mrn`: every expression of a corpus is
// run over several Patients by HL7's FHIRPath.js (npm fhirpath, R4 model) and by ours
// (`smart-imaging fhirpath --batch`), and the results must be identical. Expressions outside the
// subset must be refused by ours with "unsupported" (FHIRPath.js accepts them).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');
const S = require('./lib/server');

const MR = { system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' };
const PATIENTS = [
  { resourceType: 'Patient', id: 'a', identifier: [
    { type: { coding: [MR], text: 'Medical Record Number' }, system: 'http://hospital.smarthealthit.org', value: '293ee354' },
    { system: 'urn:oid:2.16.840.1.113883.4.1', value: '999-00-1234' }] },
  { resourceType: 'Patient', id: 'b', identifier: [
    { system: 'urn:ssn', value: 'S1', type: { text: 'EPIC' } },
    { type: { coding: [MR, { code: 'XX' }] }, value: 'TWO-CODINGS' },
    { type: { coding: [{ code: 'MR' }] }, system: 'urn:mrn', value: 'M42' },
    { type: { text: 'EPIC' }, value: 'E7' }] },
  { resourceType: 'Patient', id: 'c' },
  { resourceType: 'Patient', id: 'd', identifier: [] },
  { resourceType: 'Patient', id: 'e', identifier: [{ value: 'only' }], name: [{ family: 'F', given: ['G', 'H'] }] },
  { resourceType: 'Patient', id: 'f', identifier: [{ system: 'urn:x', value: 'X1', assigner: { display: 'Lab' } },
    { system: 'urn:x', value: 'X2' }, { type: { coding: [{ system: 'urn:local', code: 'MR' }] }, value: 'LOCAL' }] },
];
const SUPPORTED = [
  "identifier.where(type.coding.code='MR').value",
  "identifier.where(type.text = 'EPIC').value",
  'identifier[0].value',
  'identifier[1].value',
  'identifier[5].value',
  'Patient.identifier.value',
  'Patient.identifier[0].system',
  'Observation.identifier.value',
  'identifier.value.first()',
  'identifier.first().value',
  'identifier.where(system = \'urn:x\').value.first()',
  'identifier.exists()',
  'identifier.where(system = \'urn:mrn\').exists()',
  'identifier.exists(system = \'urn:mrn\')',
  "identifier.where(system != 'urn:ssn').value",
  "identifier.where(system = 'urn:mrn' or type.text = 'EPIC').value",
  "identifier.where(system = 'urn:x' and value = 'X2').value",
  "identifier.where((system = 'urn:x' or system = 'urn:mrn') and value != 'X1').value",
  "identifier.where(type.coding.code = 'MR' and type.coding.system = 'urn:local').value",
  "identifier.where(type.coding.where(code = 'MR').exists()).value",
  "identifier.where(type.coding.where(code = 'MR' and system = 'http://terminology.hl7.org/CodeSystem/v2-0203').exists()).value",
  'identifier.where(assigner.display = \'Lab\').value',
  'identifier.where(assigner.exists()).value',
  'identifier.type.coding.code',
  'identifier.type.coding[1].code',
  'name.given',
  'name.given[1]',
  'name[0].family',
  "id = 'b'",
  "id != 'b'",
  "identifier.value = 'only'",
  "identifier.where(value = 'only' or value = 'X1').value",
  "identifier.where(type.text = 'EPIC').value.first()",
  "'literal'",
  "identifier.where(system = 'urn:x').where(value = 'X2').value",
  'identifier.where(system).value',
  'identifier.value and id',
  "identifier.exists() and id = 'a'",
  "telecom.exists() or id = 'c'",
  "identifier.where('x').value",
  "identifier.where(value = 'it\\'s').value",
];
const UNSUPPORTED = [
  'identifier.count()', 'identifier.select(value)', 'identifier | name', '%resource.id', "identifier.value + 'x'",
  "identifier.where(value > '1')", 'identifier.where(active = true)', '$this.id', 'identifier.last()',
  "identifier.where(value.startsWith('M'))", 'identifier[0].value.substring(1)',
];

function reference(resource, expr) {
  try {
    return { result: fhirpath.evaluate(resource, expr, null, r4) };
  } catch (e) {
    return { error: e.message };
  }
}

describe('FHIRPath subset vs HL7 FHIRPath.js (differential)', { timeout: 60000 }, () => {
  it(`agrees on ${SUPPORTED.length} expressions x ${PATIENTS.length} Patients, and refuses the rest`, async (t) => {
    const dir = S.makeTempDir('fhirpath');
    try {
      const cases = [];
      for (const expression of [...SUPPORTED, ...UNSUPPORTED]) {
        for (const resource of PATIENTS) cases.push({ expression, resource });
      }
      const file = path.join(dir, 'cases.json');
      fs.writeFileSync(file, JSON.stringify(cases));
      const r = await S.runCli(['fhirpath', '--batch', file], { timeoutMs: 30000 });
      assert.equal(r.code, 0, r.output);
      const ours = JSON.parse(r.stdout);
      assert.equal(ours.length, cases.length);
      let compared = 0;
      let errorsBoth = 0;
      cases.forEach((c, i) => {
        const label = `${c.expression} on Patient/${c.resource.id}`;
        const theirs = reference(c.resource, c.expression);
        if (UNSUPPORTED.includes(c.expression)) {
          assert.ok(ours[i].error && ours[i].error.startsWith('unsupported:'), `${label}: ours must refuse: ${JSON.stringify(ours[i])}`);
          assert.ok(!theirs.error || !/parse|syntax/i.test(theirs.error), `${label}: FHIRPath.js parses it`);
          return;
        }
        if (theirs.error) {
          assert.ok(ours[i].error && !ours[i].error.startsWith('unsupported:'), `${label}: FHIRPath.js fails (${theirs.error}); ours gave ${JSON.stringify(ours[i])}`);
          errorsBoth++;
          return;
        }
        assert.deepEqual(ours[i].result, theirs.result, `${label}`);
        compared++;
      });
      t.diagnostic(`${compared} results identical, ${errorsBoth} errors on both sides, ${UNSUPPORTED.length * PATIENTS.length} refusals`);
      assert.ok(compared > 200);
    } finally {
      S.removeDir(dir);
    }
  });
});
