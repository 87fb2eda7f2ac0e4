// Loaded before every test file (vitest setupFiles). @peculiar/x509, used by tests as an
// independent certificate encoder, needs the Reflect metadata API at import time.
import 'reflect-metadata';
