//! The guests of the workspace, built for `wasm32-wasip2` by this crate's build script during the
//! normal build: the built-in XML guest (embedded in the `opentact` binary), the test guests
//! (hostile and benchmark guests for the flow host's tests) and the examples.

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The component file of the guest `name` (`xml-guest`, `hello`, `spin`, `ivr`…).
///
/// # Panics
/// On an unknown name, listing the known ones: this is for tests and tools.
pub fn path(name: &str) -> PathBuf {
    match GUESTS.iter().find(|(guest, _)| *guest == name) {
        Some((_, path)) => PathBuf::from(path),
        None => {
            let known: Vec<&str> = GUESTS.iter().map(|(guest, _)| *guest).collect();
            panic!("no guest named {name:?}; known: {}", known.join(", "))
        }
    }
}

/// The component bytes of the guest `name`.
///
/// # Panics
/// On an unknown name, or when the built file cannot be read.
pub fn bytes(name: &str) -> Vec<u8> {
    let path = path(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_guest_is_a_component() {
        // The component-model binary header: magic, then version 0x0d and layer 1.
        const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        assert!(super::XML_GUEST.starts_with(&COMPONENT_HEADER));
        for (name, _) in super::GUESTS {
            assert!(super::bytes(name).starts_with(&COMPONENT_HEADER), "{name} is not a component");
        }
    }
}
