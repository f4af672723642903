// The demo datasets `gatehouse up` creates on first start: synthetic, and the same bytes on every
// machine (a seeded PRNG, fixed epochs), so examples and tests can count on their contents.
import { type NewDataset, type PartitionData, writeDataset } from './catalog/index.js';
import { cachedPartitions } from './demo-data-cache.js';

const PRODUCED_BY = 'gatehouse demo data';

/** Creates the demo datasets that do not exist yet (an existing folder of that name is left alone). */
export async function ensureDemoData(root: string): Promise<{ created: string[] }> {
  const created: string[] = [];
  for (const [name, build] of Object.entries(DEMO_DATASETS)) {
    // build() is lazy: nothing is generated for a name that is already taken. The partitions come
    // from the build's cache when it has them (demo-data-cache.ts), generated here otherwise.
    // Read when writeDataset iterates them, so a later start (the datasets exist) reads nothing.
    const dataset = build();
    const partitions: Iterable<PartitionData> = { [Symbol.iterator]: () => (cachedPartitions(name) ?? dataset.partitions)[Symbol.iterator]() };
    if (await writeDataset(root, name, { ...dataset, partitions })) created.push(name);
  }
  return { created };
}

export const DEMO_DATASETS: Record<string, () => NewDataset> = {
  transactions: () => ({
    format: 'csv',
    columns: ['id', 'customer_id', 'amount', 'currency', 'merchant', 'category', 'ts'],
    owner: 'platform',
    labels: [],
    produced_by: PRODUCED_BY,
    partitions: transactions(300_000, 16),
  }),
  customers: () => ({
    format: 'csv',
    columns: ['customer_id', 'name', 'email', 'country', 'signup_date'],
    owner: 'platform',
    labels: ['pii'],
    produced_by: PRODUCED_BY,
    partitions: customers(CUSTOMERS, 2),
  }),
  words: () => ({
    format: 'jsonl',
    columns: ['id', 'word'],
    owner: 'platform',
    labels: [],
    produced_by: PRODUCED_BY,
    partitions: words(50_000, 4),
  }),
};

const CUSTOMERS = 2_000;

/** mulberry32: tiny, fast, and good enough for synthetic data; not for anything secret. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** RFC 4180: quote a field only when it holds a comma, a quote or a line break. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** Splits `total` rows into `parts` partitions (the first ones one row larger when it does not divide). */
function* partitioned(total: number, parts: number, header: string | null, row: (index: number) => string): Generator<PartitionData> {
  let index = 0;
  for (let p = 0; p < parts; p++) {
    const rows = Math.floor(total / parts) + (p < total % parts ? 1 : 0);
    let text = header === null ? '' : `${header}\n`;
    for (let i = 0; i < rows; i++) text += `${row(index++)}\n`;
    yield { text, rows };
  }
}

const MERCHANTS: readonly (readonly [merchant: string, category: string, typical: number])[] = [
  ['Fresh Market', 'groceries', 45], ['Corner Grocer', 'groceries', 18], ['Bio Basket', 'groceries', 60],
  ['City Transit', 'transport', 3], ['RideNow', 'transport', 16], ['Fuel Stop', 'fuel', 65],
  ['Café Central', 'restaurants', 12], ['Noodle Bar', 'restaurants', 22], ['Pizza Piazza', 'restaurants', 28],
  ['Books, Maps & More', 'books', 24], ['StreamFlix', 'subscriptions', 13], ['CloudBox', 'subscriptions', 10],
  ['Sportif', 'sports', 55], ['Home & Garden Depot', 'home', 85], ['Pharma Plus', 'health', 20],
  ['Dr. Smile Dental', 'health', 140], ['ElectroWorld', 'electronics', 240], ['Gadget Hub', 'electronics', 60],
  ['SkyHigh Airlines', 'travel', 320], ['Harbor Hotel', 'travel', 180], ['Cinema Paradiso', 'entertainment', 14],
  ['Arcade 88', 'entertainment', 9], ['Threads Fashion', 'clothing', 70], ['Shoe Box', 'clothing', 90],
  ['PetPals', 'pets', 35], ['Power & Light Co', 'utilities', 95], ['Telco One', 'telecom', 40],
];
const CURRENCIES = ['EUR', 'EUR', 'EUR', 'EUR', 'USD', 'USD', 'GBP', 'GBP', 'CHF'] as const;

function transactions(total: number, parts: number): Generator<PartitionData> {
  const rand = random(0x7a11);
  const merchants = MERCHANTS.map(([m, c, typical]) => [csvField(m), c, typical] as const);
  let ts = Date.UTC(2024, 0, 1) / 1000;
  const meanStep = (366 * 86_400) / total; // a year of 2024, in order of time
  return partitioned(total, parts, 'id,customer_id,amount,currency,merchant,category,ts', (i) => {
    ts += Math.floor(rand() * 2 * meanStep);
    // Skewed towards the first customers: a few customers make many payments.
    const customer = 1 + Math.floor(rand() * rand() * CUSTOMERS);
    const [merchant, category, typical] = pick(rand, merchants);
    let amount = typical * (0.3 + 1.4 * rand());
    if (rand() < 0.01) amount *= 8; // the occasional big purchase
    if (rand() < 0.005) amount = -amount; // refunds
    const when = new Date(ts * 1000).toISOString().slice(0, 19);
    return `t${pad(i + 1, 7)},c${pad(customer, 5)},${amount.toFixed(2)},${pick(rand, CURRENCIES)},${merchant},${category},${when}Z`;
  });
}

const FIRST_NAMES = [
  'Anna', 'Ben', 'Chloé', 'David', 'Elif', 'Farid', 'Greta', 'Hiro', 'Ines', 'Jonas', 'Kofi', 'Lena', 'Mateo', 'Nora',
  'Olu', 'Priya', 'Quentin', 'Rosa', 'Sven', 'Tara', 'Umar', 'Vera', 'Wei', 'Ximena', 'Yusuf', 'Zoë',
];
const LAST_NAMES = [
  'Andersen', 'Becker', 'Costa', 'Dubois', 'Eriksson', 'Fischer', 'García', 'Hoffmann', 'Ivanova', 'Jansen', 'Kowalski',
  'Lambert', 'Müller', "O'Brien", 'Nakamura', 'Okafor', 'Petrov', 'Rossi', 'Schmidt', 'Tanaka', 'Urban', 'Van Dijk',
  'Weber', 'Yilmaz', 'Zimmermann',
];
const COUNTRIES = ['DE', 'FR', 'GB', 'US', 'NL', 'ES', 'IT', 'CH', 'SE', 'PL', 'JP', 'NG', 'IN', 'TR'] as const;

function customers(total: number, parts: number): Generator<PartitionData> {
  const rand = random(0xc057);
  const since = Date.UTC(2019, 0, 1);
  return partitioned(total, parts, 'customer_id,name,email,country,signup_date', (i) => {
    const first = pick(rand, FIRST_NAMES);
    const last = pick(rand, LAST_NAMES);
    // Plain ASCII local parts, numbered so that two Anna Rossis never share an address.
    const local = `${first}.${last}`.normalize('NFD').replace(/[^A-Za-z.]/g, '').toLowerCase();
    const signup = new Date(since + Math.floor(rand() * 5 * 365) * 86_400_000).toISOString().slice(0, 10);
    return [`c${pad(i + 1, 5)}`, `${first} ${last}`, `${local}${i + 1}@example.com`, pick(rand, COUNTRIES), signup].map(csvField).join(',');
  });
}

const VOCABULARY = (
  'the of and to in is it you that he was for on are with as his they be at one have this from or had by word but ' +
  'what some we can out other were all there when up use your how said an each she which do their time if will way ' +
  'about many then them write would like so these her long make thing see him two has look more day could go come ' +
  'did number sound no most people my over know water than call first who may down side been now find any new work ' +
  'part take get place made live where after back little only round man year came show every good me give our under ' +
  "name very through just form sentence great think say help low line differ turn cause much mean before move right boy " +
  "old too same tell does set three want air well also play small end put home read hand port large spell add even " +
  "land here must big high such follow act why ask men change went light kind off need house picture try us again " +
  "animal point mother world near build self earth father don't it's well-known e-mail café naïve résumé façade " +
  'jalapeño über coöperate'
).split(' ');
const PUNCTUATION = [',', '.', '!', '?', ';', ':', '...', ')'] as const;

/** Odd forms a normaliser has to undo: case, punctuation, quotes, stray whitespace, decomposed accents. */
const ODDITIES: readonly ((w: string, rand: () => number) => string)[] = [
  (w) => w.toUpperCase(),
  (w) => w.charAt(0).toUpperCase() + w.slice(1),
  (w, rand) => [...w].map((c) => (rand() < 0.5 ? c.toUpperCase() : c)).join(''),
  (w, rand) => w + pick(rand, PUNCTUATION),
  (w, rand) => (rand() < 0.5 ? `"${w}"` : `(${w}`),
  (w, rand) => pick(rand, [` ${w}`, `${w} `, `\t${w}`, `  ${w}  `]),
  (w) => w.normalize('NFD'),
  (w, rand) => (rand() < 0.5 ? `«${w}»` : `'${w}'`),
];

function words(total: number, parts: number): Generator<PartitionData> {
  const rand = random(0x30d5);
  return partitioned(total, parts, null, (i) => {
    // Roughly Zipf-like: common words come up far more often.
    let word = VOCABULARY[Math.floor(rand() * rand() * VOCABULARY.length)]!;
    if (rand() < 0.2) word = pick(rand, ODDITIES)(word, rand);
    return JSON.stringify({ id: i + 1, word });
  });
}
