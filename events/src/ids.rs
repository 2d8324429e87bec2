//! Identifiers: ledger person ids, NOMIS prison numbers, NHS numbers (Modulus 11),
//! probation CRNs and HMPPS prison codes, each parsed and validated.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ulid::Ulid;

use crate::problems::{FromJson, Problems};

/// The ledger's own id for a person: a ULID minted at the edge when a person is first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub Ulid);

impl PersonId {
    pub fn to_bytes(self) -> [u8; 16] {
        self.0 .0.to_be_bytes()
    }
    pub fn from_bytes(b: [u8; 16]) -> Self {
        PersonId(Ulid(u128::from_be_bytes(b)))
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for PersonId {
    type Err = ulid::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s).map(PersonId)
    }
}

impl JsonSchema for PersonId {
    fn schema_name() -> String {
        "PersonId".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        pattern_schema("^[0-7][0-9A-HJKMNP-TV-Z]{25}$", "ledger person id (ULID)")
    }
}

impl FromJson for PersonId {
    fn from_json(
        value: &Value,
        pointer: &crate::problems::Pointer,
        problems: &mut Problems,
    ) -> Option<Self> {
        let parsed = value.as_str().and_then(|s| s.parse().ok());
        if parsed.is_none() {
            problems.push(pointer, "must be a ledger person id (26-character ULID)");
        }
        parsed
    }
}

fn pattern_schema(pattern: &str, description: &str) -> schemars::schema::Schema {
    use schemars::schema::*;
    SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        string: Some(Box::new(StringValidation {
            pattern: Some(pattern.into()),
            ..Default::default()
        })),
        metadata: Some(Box::new(Metadata {
            description: Some(description.into()),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

/// Declares a string identifier newtype with a validating constructor.
macro_rules! identifier {
    ($(#[$m:meta])* $name:ident, $pattern:literal, $what:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn parse(s: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(s).map(|()| $name(s.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl JsonSchema for $name {
            fn schema_name() -> String {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
                pattern_schema($pattern, $what)
            }
        }
        impl FromJson for $name {
            fn from_json(value: &Value, pointer: &crate::problems::Pointer, problems: &mut Problems) -> Option<Self> {
                match value.as_str() {
                    None => {
                        problems.push(pointer, concat!("must be a string: ", $what));
                        None
                    }
                    Some(s) => match Self::parse(s) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            problems.push(pointer, e);
                            None
                        }
                    },
                }
            }
        }
    };
}

fn matches_shape(s: &str, shape: &str) -> bool {
    // shape: 'A' = upper-case letter, '9' = digit
    s.len() == shape.len()
        && s.bytes().zip(shape.bytes()).all(|(c, k)| match k {
            b'A' => c.is_ascii_uppercase(),
            _ => c.is_ascii_digit(),
        })
}

identifier!(
    /// NOMIS prison number, e.g. `A1234BC`.
    Nomis, "^[A-Z][0-9]{4}[A-Z]{2}$", "NOMIS prison number like A1234BC",
    |s| if matches_shape(s, "A9999AA") { Ok(()) } else { Err("must be a NOMIS prison number like A1234BC (letter, 4 digits, 2 letters)".into()) }
);

identifier!(
    /// Probation case reference number, e.g. `X123456`.
    Crn, "^[A-Z][0-9]{6}$", "probation case reference like X123456",
    |s| if matches_shape(s, "A999999") { Ok(()) } else { Err("must be a probation CRN like X123456 (letter, 6 digits)".into()) }
);

identifier!(
    /// NHS number: ten digits whose last is the Modulus 11 check digit.
    NhsNumber, "^[0-9]{10}$", "10-digit NHS number with a valid Modulus 11 check digit",
    |s| {
        if !matches_shape(s, "9999999999") {
            return Err("must be a 10-digit NHS number".into());
        }
        let digits: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
        match nhs_check_digit(&digits[..9]) {
            Some(c) if c == digits[9] => Ok(()),
            _ => Err("is not a valid NHS number: the Modulus 11 check digit does not match".into()),
        }
    }
);

/// The Modulus 11 check digit for the first nine digits of an NHS number, or `None`
/// when those nine digits can never form a valid number (remainder gives 10).
pub fn nhs_check_digit(first_nine: &[u8]) -> Option<u8> {
    debug_assert_eq!(first_nine.len(), 9);
    let sum: u32 = first_nine
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * (10 - i as u32))
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// HMPPS prison codes (establishments in England and Wales) with their names.
/// The five pilot prisons of the service are listed in [`PILOT_PRISONS`].
pub const PRISONS: &[(&str, &str)] = &[
    ("ACI", "Altcourse"),
    ("AGI", "Askham Grange"),
    ("ASI", "Ashfield"),
    ("AYI", "Aylesbury"),
    ("BAI", "Belmarsh"),
    ("BCI", "Buckley Hall"),
    ("BFI", "Bedford"),
    ("BLI", "Bristol"),
    ("BMI", "Birmingham"),
    ("BNI", "Bullingdon"),
    ("BRI", "Bure"),
    ("BSI", "Brinsford"),
    ("BWI", "Berwyn"),
    ("BXI", "Brixton"),
    ("BZI", "Bronzefield"),
    ("CDI", "Chelmsford"),
    ("CFI", "Cardiff"),
    ("CKI", "Cookham Wood"),
    ("CLI", "Coldingley"),
    ("CWI", "Channings Wood"),
    ("DAI", "Dartmoor"),
    ("DGI", "Dovegate"),
    ("DHI", "Drake Hall"),
    ("DMI", "Durham"),
    ("DNI", "Doncaster"),
    ("DTI", "Deerbolt"),
    ("DWI", "Downview"),
    ("EEI", "Erlestoke"),
    ("EHI", "Standford Hill"),
    ("ESI", "East Sutton Park"),
    ("EWI", "Eastwood Park"),
    ("EXI", "Exeter"),
    ("EYI", "Elmley"),
    ("FBI", "Forest Bank"),
    ("FDI", "Ford"),
    ("FHI", "Foston Hall"),
    ("FKI", "Frankland"),
    ("FMI", "Feltham"),
    ("FNI", "Full Sutton"),
    ("FSI", "Featherstone"),
    ("FWI", "Five Wells"),
    ("GHI", "Garth"),
    ("GMI", "Guys Marsh"),
    ("GNI", "Grendon"),
    ("GTI", "Gartree"),
    ("HBI", "Hollesley Bay"),
    ("HCI", "Huntercombe"),
    ("HEI", "Hewell"),
    ("HHI", "Holme House"),
    ("HII", "Hindley"),
    ("HLI", "Hull"),
    ("HMI", "Humber"),
    ("HOI", "High Down"),
    ("HPI", "Highpoint"),
    ("HVI", "Haverigg"),
    ("ISI", "Isis"),
    ("IWI", "Isle of Wight"),
    ("KMI", "Kirkham"),
    ("KVI", "Kirklevington Grange"),
    ("LCI", "Leicester"),
    ("LEI", "Leeds"),
    ("LFI", "Lancaster Farms"),
    ("LGI", "Lowdham Grange"),
    ("LHI", "Lindholme"),
    ("LII", "Lincoln"),
    ("LLI", "Long Lartin"),
    ("LNI", "Low Newton"),
    ("LPI", "Liverpool"),
    ("LTI", "Littlehey"),
    ("LWI", "Lewes"),
    ("LYI", "Leyhill"),
    ("MDI", "Moorland"),
    ("MHI", "Morton Hall"),
    ("MRI", "Manchester"),
    ("MSI", "Maidstone"),
    ("MTI", "The Mount"),
    ("NHI", "New Hall"),
    ("NLI", "Northumberland"),
    ("NMI", "Nottingham"),
    ("NSI", "North Sea Camp"),
    ("NWI", "Norwich"),
    ("ONI", "Onley"),
    ("OWI", "Oakwood"),
    ("PBI", "Peterborough"),
    ("PDI", "Portland"),
    ("PFI", "Peterborough (female)"),
    ("PNI", "Preston"),
    ("PVI", "Pentonville"),
    ("RCI", "Rochester"),
    ("RHI", "Rye Hill"),
    ("RNI", "Ranby"),
    ("RSI", "Risley"),
    ("SDI", "Send"),
    ("SFI", "Stafford"),
    ("SHI", "Stoke Heath"),
    ("SKI", "Stocken"),
    ("SLI", "Swaleside"),
    ("SNI", "Swinfen Hall"),
    ("SPI", "Spring Hill"),
    ("STI", "Styal"),
    ("SUI", "Sudbury"),
    ("SWI", "Swansea"),
    ("TCI", "Thorn Cross"),
    ("TSI", "Thameside"),
    ("UKI", "Usk"),
    ("UPI", "Prescoed"),
    ("VEI", "The Verne"),
    ("WCI", "Winchester"),
    ("WDI", "Wakefield"),
    ("WEI", "Wealstun"),
    ("WHI", "Woodhill"),
    ("WII", "Warren Hill"),
    ("WLI", "Wayland"),
    ("WMI", "Wymott"),
    ("WNI", "Werrington"),
    ("WRI", "Whitemoor"),
    ("WSI", "Wormwood Scrubs"),
    ("WTI", "Whatton"),
    ("WWI", "Wandsworth"),
    ("WYI", "Wetherby"),
];

/// The service's pilot prisons: Winchester, Bullingdon, Aylesbury, Grendon, Spring Hill.
pub const PILOT_PRISONS: &[&str] = &["WCI", "BNI", "AYI", "GNI", "SPI"];

/// An HMPPS three-letter prison code from [`PRISONS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrisonCode(String);

impl PrisonCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        if PRISONS.iter().any(|(c, _)| *c == s) {
            Ok(PrisonCode(s.to_string()))
        } else {
            Err(format!("unknown HMPPS prison code {s:?}"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The establishment's name.
    pub fn name(&self) -> &'static str {
        PRISONS
            .iter()
            .find(|(c, _)| *c == self.0)
            .map(|(_, n)| *n)
            .unwrap_or("")
    }
}

impl TryFrom<String> for PrisonCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<PrisonCode> for String {
    fn from(v: PrisonCode) -> String {
        v.0
    }
}
impl fmt::Display for PrisonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl JsonSchema for PrisonCode {
    fn schema_name() -> String {
        "PrisonCode".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::*;
        SchemaObject {
            instance_type: Some(InstanceType::String.into()),
            enum_values: Some(
                PRISONS
                    .iter()
                    .map(|(c, _)| Value::String(c.to_string()))
                    .collect(),
            ),
            metadata: Some(Box::new(Metadata {
                description: Some("HMPPS three-letter prison code".into()),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}
impl FromJson for PrisonCode {
    fn from_json(
        value: &Value,
        pointer: &crate::problems::Pointer,
        problems: &mut Problems,
    ) -> Option<Self> {
        let parsed = value.as_str().map(Self::parse);
        match parsed {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                problems.push(pointer, e);
                None
            }
            None => {
                problems.push(pointer, "must be an HMPPS three-letter prison code");
                None
            }
        }
    }
}

/// Any one identifier of a person, as used in the identity index and in queries
/// (`nomis:A1234BC`, `nhs:9434765919`, `crn:X123456`, `person:01J...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identifier {
    Person(PersonId),
    Nomis(Nomis),
    Nhs(NhsNumber),
    Crn(Crn),
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Person(p) => write!(f, "person:{p}"),
            Identifier::Nomis(n) => write!(f, "nomis:{n}"),
            Identifier::Nhs(n) => write!(f, "nhs:{n}"),
            Identifier::Crn(c) => write!(f, "crn:{c}"),
        }
    }
}

impl FromStr for Identifier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| "identifier must look like nomis:A1234BC, nhs:9434765919, crn:X123456 or person:<ULID>".to_string())?;
        match kind {
            "nomis" => Nomis::parse(value).map(Identifier::Nomis),
            "nhs" => NhsNumber::parse(value).map(Identifier::Nhs),
            "crn" => Crn::parse(value).map(Identifier::Crn),
            "person" => value
                .parse()
                .map(Identifier::Person)
                .map_err(|_| "person id must be a ULID".to_string()),
            other => Err(format!(
                "unknown identifier kind {other:?}; use nomis, nhs, crn or person"
            )),
        }
    }
}

crate::record! {
    /// Who an event is about: any one or more identifiers. Given together they are linked.
    pub struct PersonRef {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub person_id: Option<PersonId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nomis: Option<Nomis>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nhs_number: Option<NhsNumber>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub crn: Option<Crn>,
    }
}

impl PersonRef {
    /// The identifiers given, ledger id first.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut out = Vec::new();
        if let Some(p) = self.person_id {
            out.push(Identifier::Person(p));
        }
        if let Some(n) = &self.nomis {
            out.push(Identifier::Nomis(n.clone()));
        }
        if let Some(n) = &self.nhs_number {
            out.push(Identifier::Nhs(n.clone()));
        }
        if let Some(c) = &self.crn {
            out.push(Identifier::Crn(c.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers() {
        for (s, ok) in [
            ("9434765919", true),
            ("9434765918", false),
            ("4010232137", true),
            ("943476591", false),
            ("94347659190", false),
            ("94347659a9", false),
        ] {
            assert_eq!(NhsNumber::parse(s).is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn nomis_and_crn_shapes() {
        assert!(Nomis::parse("A1234BC").is_ok());
        for bad in ["a1234BC", "A123BC", "A1234B", "A12345C", "11234BC"] {
            assert!(Nomis::parse(bad).is_err(), "{bad}");
        }
        assert!(Crn::parse("X123456").is_ok());
        assert!(Crn::parse("X12345").is_err());
    }

    #[test]
    fn prison_codes_include_the_pilots() {
        for p in PILOT_PRISONS {
            assert!(PrisonCode::parse(p).is_ok());
        }
        assert_eq!(PrisonCode::parse("WNI").unwrap().name(), "Werrington");
        assert!(PrisonCode::parse("XXX").is_err());
    }

    #[test]
    fn identifiers_round_trip() {
        for s in [
            "nomis:A1234BC",
            "nhs:9434765919",
            "crn:X123456",
            "person:01JD3Z8Q6V2X9S7W4K5M1N0P3R",
        ] {
            assert_eq!(s.parse::<Identifier>().unwrap().to_string(), s);
        }
        assert!("nhs:9434765918".parse::<Identifier>().is_err());
        assert!("passport:1".parse::<Identifier>().is_err());
    }
}
