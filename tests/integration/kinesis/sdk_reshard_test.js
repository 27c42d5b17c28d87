// Resharding through the Kinesis API with the real AWS SDK for JavaScript v3 (HTTP/2):
// SplitShard, MergeShards and UpdateShardCount between rounds of PutRecords, then the lineage
// (ListShards, DescribeStream, ShardFilter) and the records as a KCL-style reader sees them:
// every shard read to its end (a closed shard ends with no NextShardIterator), parents before
// children, every record put exactly once, each key's sequence numbers increasing across the
// lineage.
// Usage: node sdk_reshard_test.js ENDPOINT OUT_JSON
'use strict';
const path = require('path');
const fs = require('fs');
const assert = require('assert');
const K = require(path.join(process.env.SLUICE_NODE_MODULES, '@aws-sdk/client-kinesis'));

const [endpoint, outPath] = process.argv.slice(2);
const client = new K.KinesisClient({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
  maxAttempts: 1,
});
const send = (Cmd, input) => client.send(new Cmd(input));
const S = 'sdk-reshard';
const KEYS = 64;
const put = []; // {key, data, shard, seq}
let round = 0;

async function expectError(p, type, what) {
  try {
    await p;
  } catch (e) {
    assert.strictEqual(e.name, type, `${what}: got ${e.name}: ${e.message}`);
    return e;
  }
  throw new Error(`${what}: expected ${type}, the call succeeded`);
}

async function putRound() {
  const recs = [];
  for (let k = 0; k < KEYS; k++) recs.push({ PartitionKey: `key-${k}`, Data: Buffer.from(`r${round}-k${k}`) });
  const r = await send(K.PutRecordsCommand, { StreamName: S, Records: recs });
  assert.strictEqual(r.FailedRecordCount || 0, 0);
  r.Records.forEach((x, i) => put.push({ key: recs[i].PartitionKey, data: `r${round}-k${i}`, shard: x.ShardId, seq: x.SequenceNumber }));
  round++;
}

async function shards(filter) {
  const out = [];
  let token;
  do {
    const r = await send(K.ListShardsCommand, token ? { NextToken: token, MaxResults: 3 }
      : { StreamName: S, MaxResults: 3, ...(filter ? { ShardFilter: filter } : {}) });
    out.push(...r.Shards);
    token = r.NextToken;
  } while (token);
  return out;
}

async function active() {
  for (let i = 0; i < 200; i++) {
    const d = (await send(K.DescribeStreamSummaryCommand, { StreamName: S })).StreamDescriptionSummary;
    if (d.StreamStatus === 'ACTIVE') return d;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error('stream never ACTIVE again');
}

async function readShard(shardId) {
  const it = await send(K.GetShardIteratorCommand, { StreamName: S, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' });
  let iter = it.ShardIterator;
  const out = [];
  for (let i = 0; i < 1000 && iter; i++) {
    const r = await send(K.GetRecordsCommand, { ShardIterator: iter, Limit: 50 });
    out.push(...r.Records);
    iter = r.NextShardIterator;
    if (r.Records.length === 0 && r.MillisBehindLatest === 0) break; // caught up on an open shard
  }
  return { records: out, ended: iter === undefined || iter === null };
}

async function main() {
  await send(K.CreateStreamCommand, { StreamName: S, ShardCount: 2 });
  await active();
  await putRound();

  // SplitShard: shard 0 at the middle of its range
  const s0 = (await shards()).find((s) => s.ShardId === 'shardId-000000000000');
  const mid = (BigInt(s0.HashKeyRange.StartingHashKey) + BigInt(s0.HashKeyRange.EndingHashKey) + 1n) / 2n;
  await send(K.SplitShardCommand, { StreamName: S, ShardToSplit: s0.ShardId, NewStartingHashKey: mid.toString() });
  await active();
  await expectError(send(K.SplitShardCommand, { StreamName: S, ShardToSplit: s0.ShardId, NewStartingHashKey: mid.toString() }),
    'InvalidArgumentException', 'split a closed shard');
  await putRound();

  // MergeShards: the two children back into one
  await send(K.MergeShardsCommand, { StreamName: S, ShardToMerge: 'shardId-000000000003', AdjacentShardToMerge: 'shardId-000000000002' });
  await active();
  await expectError(send(K.MergeShardsCommand, { StreamName: S, ShardToMerge: 'shardId-000000000004', AdjacentShardToMerge: 'shardId-000000000000' }),
    'InvalidArgumentException', 'merge with a closed shard');
  await putRound();

  // UpdateShardCount: 2 -> 4 (UNIFORM_SCALING), then out of range
  const u = await send(K.UpdateShardCountCommand, { StreamName: S, TargetShardCount: 4, ScalingType: 'UNIFORM_SCALING' });
  assert.strictEqual(u.CurrentShardCount, 2);
  assert.strictEqual(u.TargetShardCount, 4);
  const summary = await active();
  assert.strictEqual(summary.OpenShardCount, 4);
  await expectError(send(K.UpdateShardCountCommand, { StreamName: S, TargetShardCount: 9, ScalingType: 'UNIFORM_SCALING' }),
    'InvalidArgumentException', 'more than double');
  await expectError(send(K.UpdateShardCountCommand, { StreamName: S, TargetShardCount: 1, ScalingType: 'UNIFORM_SCALING' }),
    'InvalidArgumentException', 'less than half');
  await putRound();

  // ---- lineage
  const all = await shards();
  const byId = new Map(all.map((s) => [s.ShardId, s]));
  const open = all.filter((s) => !s.SequenceNumberRange.EndingSequenceNumber);
  assert.strictEqual(open.length, 4);
  open.sort((a, b) => (BigInt(a.HashKeyRange.StartingHashKey) < BigInt(b.HashKeyRange.StartingHashKey) ? -1 : 1));
  open.forEach((s, i) => assert.strictEqual(BigInt(s.HashKeyRange.StartingHashKey), (BigInt(i) * 2n ** 128n) / 4n, `even range ${i}`));
  assert.strictEqual(open[3].HashKeyRange.EndingHashKey, (2n ** 128n - 1n).toString());
  const merged = byId.get('shardId-000000000004');
  assert.strictEqual(merged.ParentShardId, 'shardId-000000000003');
  assert.strictEqual(merged.AdjacentParentShardId, 'shardId-000000000002');
  for (const s of all) {
    for (const p of [s.ParentShardId, s.AdjacentParentShardId]) {
      if (!p) continue;
      const parent = byId.get(p);
      assert.ok(parent.SequenceNumberRange.EndingSequenceNumber, `${p} is closed`);
      assert.ok(BigInt(s.SequenceNumberRange.StartingSequenceNumber) > BigInt(parent.SequenceNumberRange.EndingSequenceNumber),
        `${s.ShardId} starts after its parent ${p} ends`);
    }
  }
  const d = (await send(K.DescribeStreamCommand, { StreamName: S })).StreamDescription;
  assert.strictEqual(d.StreamStatus, 'ACTIVE');
  assert.strictEqual(d.Shards.length, all.length);

  // ShardFilter: AT_LATEST lists the open shards; AFTER_SHARD_ID those after an id;
  // AT_TRIM_HORIZON the shards open at the trim horizon (the stream is younger than its
  // retention: the ones it was created with, where a KCL-style reader starts); FROM_TRIM_HORIZON
  // all of them (nothing has expired)
  assert.deepStrictEqual((await shards({ Type: 'AT_LATEST' })).map((s) => s.ShardId).sort(), open.map((s) => s.ShardId).sort());
  assert.deepStrictEqual((await shards({ Type: 'AFTER_SHARD_ID', ShardId: 'shardId-000000000004' })).map((s) => s.ShardId),
    all.map((s) => s.ShardId).filter((id) => id > 'shardId-000000000004'));
  assert.deepStrictEqual((await shards({ Type: 'AT_TRIM_HORIZON' })).map((s) => s.ShardId),
    all.filter((s) => !s.ParentShardId).map((s) => s.ShardId));
  assert.strictEqual((await shards({ Type: 'FROM_TRIM_HORIZON' })).length, all.length);

  // ---- read like the KCL: a shard once its parents are read to their end
  const done = new Set();
  const got = [];
  const order = [];
  for (let pass = 0; done.size < all.length && pass < all.length + 1; pass++) {
    for (const s of all) {
      if (done.has(s.ShardId)) continue;
      if ([s.ParentShardId, s.AdjacentParentShardId].some((p) => p && !done.has(p))) continue;
      const r = await readShard(s.ShardId);
      const closed = !!s.SequenceNumberRange.EndingSequenceNumber;
      assert.strictEqual(r.ended, closed, `${s.ShardId}: NextShardIterator null exactly when closed and read to its end`);
      for (const x of r.records) got.push({ shard: s.ShardId, seq: x.SequenceNumber, key: x.PartitionKey, data: Buffer.from(x.Data).toString() });
      done.add(s.ShardId);
      order.push(s.ShardId);
    }
  }
  assert.strictEqual(done.size, all.length, 'every shard read');
  const want = put.map((p) => `${p.shard}/${p.seq}/${p.key}/${p.data}`).sort();
  const have = got.map((p) => `${p.shard}/${p.seq}/${p.key}/${p.data}`).sort();
  assert.deepStrictEqual(have, want, 'every record put, exactly once, where PutRecords said');
  // per key, in reading order: sequence numbers increase across parent -> child
  const lastSeq = new Map();
  for (const r of got) {
    const prev = lastSeq.get(r.key);
    assert.ok(prev === undefined || BigInt(r.seq) > prev, `key ${r.key}: ${r.seq} after ${prev}`);
    lastSeq.set(r.key, BigInt(r.seq));
  }
  // and the rounds of each key come in order
  const rounds = new Map();
  for (const r of got) {
    const n = Number(r.data.slice(1, r.data.indexOf('-')));
    assert.ok(!rounds.has(r.key) || rounds.get(r.key) < n, `key ${r.key}: round ${n} after ${rounds.get(r.key)}`);
    rounds.set(r.key, n);
  }

  await send(K.DeleteStreamCommand, { StreamName: S });
  fs.writeFileSync(outPath, JSON.stringify({ shards: all.length, records: got.length, order }));
  client.destroy();
}

main().catch((e) => {
  console.error('FAILED:', e);
  client.destroy();
  process.exit(1);
});
