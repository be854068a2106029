/**
 * Counts, from inside the keygate process, what its ioredis clients send: commands, and
 * round trips (a command written on its own is one; a pipeline or MULTI written in one
 * piece is one for all its commands). Loaded by bench/keygate.js before keygate opens
 * Redis, so it sees every client the counters backend creates. Nothing else changes.
 */
import Redis from 'ioredis';

export const redisTraffic = { commands: 0, roundTrips: 0 };

const pipelineWrites = new WeakSet();
const sendCommand = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function countedSendCommand(command, stream) {
  redisTraffic.commands += 1;
  if (stream && typeof stream === 'object' && stream.isPipeline) {
    if (!pipelineWrites.has(stream)) {
      pipelineWrites.add(stream);
      redisTraffic.roundTrips += 1;
    }
  } else {
    redisTraffic.roundTrips += 1;
  }
  return sendCommand.call(this, command, stream);
};
