import { existsSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, isAlive, listensOn } from '../harness/common.js';
import { type MosquittoInstance, startMosquitto } from '../harness/mosquitto.js';

let broker: MosquittoInstance;
let extraPort: number;

beforeAll(async () => {
  extraPort = await freePort();
  broker = await startMosquitto({
    // The extension point a TLS listener will use: a second listener from extra config.
    extraConfig: ({ dir }) => `# dir ${dir}\nlistener ${extraPort} 127.0.0.1\n`,
    files: { 'marker.txt': 'x' },
  });
});

afterAll(async () => {
  await broker?.stop();
});

async function connect(url: string): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

describe('mosquitto harness', () => {
  it('round-trips an MQTT 5 message with its properties', async () => {
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const sub = await connect(broker.url);
    const pub = await connect(broker.url);
    try {
      await sub.subscribeAsync('spire-edge/test/#', { qos: 1 });
      const received = new Promise<{ topic: string; payload: Buffer; packet: mqtt.IPublishPacket }>(
        (resolve) =>
          sub.once('message', (topic, payload, packet) => resolve({ topic, payload, packet })),
      );
      const correlationData = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
      await pub.publishAsync('spire-edge/test/svid', 'hello', {
        qos: 1,
        properties: {
          correlationData,
          responseTopic: 'spire-edge/test/reply',
          userProperties: { 'spiffe-id': 'spiffe://example.org/agent' },
        },
      });
      const { topic, payload, packet } = await received;
      expect(topic).toBe('spire-edge/test/svid');
      expect(payload.toString()).toBe('hello');
      expect(Buffer.from(packet.properties?.correlationData ?? [])).toEqual(correlationData);
      expect(packet.properties?.responseTopic).toBe('spire-edge/test/reply');
      expect(packet.properties?.userProperties).toEqual({
        'spiffe-id': 'spiffe://example.org/agent',
      });
    } finally {
      await Promise.all([sub.endAsync(), pub.endAsync()]);
    }
  });

  it('applies extra config: the second listener accepts MQTT 5 clients', async () => {
    expect(await listensOn(broker.pid, extraPort)).toBe(true);
    const client = await connect(`mqtt://127.0.0.1:${extraPort}`);
    await client.endAsync();
    expect(broker.output()).toContain(`Opening ipv4 listen socket on port ${extraPort}`);
  });

  it('reports a configuration mosquitto refuses, with its log', async () => {
    await expect(startMosquitto({ extraConfig: 'no_such_option 1\n' })).rejects.toMatchObject({
      code: 'ERR_HARNESS_START_FAILED',
      message: expect.stringContaining('no_such_option'),
    });
  });

  // Last: it stops the shared broker (afterAll's stop() is then a no-op).
  it('stop() ends the broker (the pid is gone) and is idempotent', async () => {
    const pid = broker.pid;
    expect(isAlive(pid)).toBe(true);
    await Promise.all([broker.stop(), broker.stop()]);
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(broker.dir)).toBe(false);
    const client = mqtt.connect(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
    const err = await new Promise<Error>((resolve) => client.once('error', resolve));
    client.end(true);
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });
});
