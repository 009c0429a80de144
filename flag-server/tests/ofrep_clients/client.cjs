// OFREP from Node: @openfeature/server-sdk with @openfeature/ofrep-provider (npm) against the
// real server. Run by flag-server/tests/ofrep_clients.rs as `node client.cjs BASE_URL TOKEN`
// with NODE_PATH at the installed modules; any failed check exits non-zero with what
// differed. Prints, as JSON, the variant each `split-N` context got.
const { OpenFeature, ErrorCode } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');
const assert = require('node:assert/strict');

async function main() {
  const [base, token] = process.argv.slice(2);
  await OpenFeature.setProviderAndWait(
    new OFREPProvider({ baseUrl: base, headers: [['Authorization', `Bearer ${token}`]] }),
  );
  const client = OpenFeature.getClient();
  const ctx = { targetingKey: 'user-1' };
  const failures = [];
  const check = (what, got, want) => {
    try {
      assert.deepEqual(got, want);
    } catch {
      failures.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  };

  let d = await client.getBooleanDetails('checkout', false, ctx);
  check('target', [d.value, d.reason, d.variant, d.flagMetadata.reason], [true, 'TARGETING_MATCH', 'on', 'TARGET_MATCH']);
  d = await client.getBooleanDetails('checkout', false, { targetingKey: 'u9', country: 'NL' });
  check('rule', [d.value, d.reason, d.flagMetadata.ruleId], [true, 'TARGETING_MATCH', 'benelux']);
  d = await client.getStringDetails('theme', 'none', ctx);
  check('string', [d.value, d.reason, d.variant], ['red', 'STATIC', 'red']);
  check('number', await client.getNumberValue('limit', 0, ctx), 42);
  check('float', await client.getNumberValue('ratio', 0, ctx), 0.25);
  check('object', await client.getObjectValue('layout', {}, ctx), { columns: 3, dense: true });
  d = await client.getBooleanDetails('nope', true, ctx);
  check('not found', [d.value, d.errorCode, d.reason], [true, ErrorCode.FLAG_NOT_FOUND, 'ERROR']);
  d = await client.getStringDetails('checkout', 'default', ctx);
  check('type mismatch', [d.value, d.errorCode], ['default', ErrorCode.TYPE_MISMATCH]);
  d = await client.getBooleanDetails('checkout', false, { plan: 'pro' });
  check('no targeting key', [d.value, d.errorCode], [false, ErrorCode.TARGETING_KEY_MISSING]);

  const split = {};
  for (let i = 0; i < 200; i++) {
    d = await client.getBooleanDetails('checkout', false, { targetingKey: `split-${i}` });
    check(`split-${i} reason`, d.reason, 'SPLIT');
    split[`split-${i}`] = d.variant;
  }
  await OpenFeature.close();
  if (failures.length) {
    console.error('node OFREP client:\n  ' + failures.join('\n  '));
    process.exit(1);
  }
  console.log(JSON.stringify(split));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
