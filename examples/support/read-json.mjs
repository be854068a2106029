// Reading a JSON request body in the examples' plain node:http upstreams.

/**
 * The parsed JSON body (undefined when empty); rejects a body over `maxBytes` or one that
 * is not JSON, so each upstream answers that in its own API's words.
 */
export function readJson(req, maxBytes) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > maxBytes) reject(new Error('body too large'));
      else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        const text = Buffer.concat(chunks).toString('utf8').trim();
        resolve(text === '' ? undefined : JSON.parse(text));
      } catch (error) {
        reject(error);
      }
    });
  });
}
