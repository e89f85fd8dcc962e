"""The payload codec's key ring of the tests and of the processes they start (tests/conftest.py
sets it). Not a secret: the histories in tests/histories/ were recorded encrypted with it, and
replay with it."""

TEST_PAYLOAD_KEYS = "test-1:gTuVstmuiGeYZeJilQCuomr+DDTP/mizzw+vsMAT3UE="
