//! Generated sales for demos and load: a small shop catalogue (Spanish product names, accents
//! included, realistic euro prices) and a few customers. Pure; randomness is injected.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::event::{EVENT_TYPE, SaleCompleted, SaleDraft, Timestamp};

/// One catalogue entry.
#[derive(Clone, Copy, Debug)]
pub struct Product {
    /// Catalogue id.
    pub id: u64,
    /// Name as printed on the receipt.
    pub name: &'static str,
    /// Unit price in cents.
    pub price_cents: u64,
}

/// The shop's catalogue. Entry 1 is the course document's example product.
pub const PRODUCTS: &[Product] = &[
    Product {
        id: 1,
        name: "Manzana Orgánica",
        price_cents: 1500,
    },
    Product {
        id: 2,
        name: "Café de Colombia 500 g",
        price_cents: 899,
    },
    Product {
        id: 3,
        name: "Aceite de Oliva Virgen Extra 1 L",
        price_cents: 1195,
    },
    Product {
        id: 4,
        name: "Jamón Ibérico de Bellota 100 g",
        price_cents: 1890,
    },
    Product {
        id: 5,
        name: "Queso Manchego Curado",
        price_cents: 1450,
    },
    Product {
        id: 6,
        name: "Turrón de Jijona",
        price_cents: 675,
    },
    Product {
        id: 7,
        name: "Plátano de Canarias (kg)",
        price_cents: 249,
    },
    Product {
        id: 8,
        name: "Miel de Azahar 500 g",
        price_cents: 725,
    },
    Product {
        id: 9,
        name: "Té Verde Matcha",
        price_cents: 1299,
    },
    Product {
        id: 10,
        name: "Pan de Centeno Ecológico",
        price_cents: 320,
    },
    Product {
        id: 11,
        name: "Limón Ecológico (malla 1 kg)",
        price_cents: 299,
    },
    Product {
        id: 12,
        name: "Chocolate Negro 85 % Cacao",
        price_cents: 345,
    },
    Product {
        id: 13,
        name: "Piña Tropical",
        price_cents: 275,
    },
    Product {
        id: 14,
        name: "Azafrán de La Mancha 1 g",
        price_cents: 990,
    },
    Product {
        id: 15,
        name: "Cafetera Italiana de Aluminio",
        price_cents: 2495,
    },
    Product {
        id: 16,
        name: "Sartén Antiadherente 28 cm",
        price_cents: 3499,
    },
    Product {
        id: 17,
        name: "Vino Tinto Ribera del Duero Crianza",
        price_cents: 1650,
    },
    Product {
        id: 18,
        name: "Paella Valenciana para Dos",
        price_cents: 2190,
    },
    Product {
        id: 19,
        name: "Cesta Gourmet Navideña",
        price_cents: 8950,
    },
    Product {
        id: 20,
        name: "Jamón Ibérico de Bellota (pieza entera)",
        price_cents: 54900,
    },
];

/// Customers the generator buys for.
pub const CUSTOMERS: &[&str] = &[
    "cliente@example.com",
    "maria.garcia@example.com",
    "jose.martinez@example.es",
    "lucia.fernandez@example.org",
    "andres.nunez@example.com",
    "ines.pena@example.es",
];

/// A random sale: a catalogue product, 1 to 6 units, a random customer, now, and a sale id of
/// 16 random hex digits (collisions are as likely as a UUID's).
pub fn random_sale<R: Rng + ?Sized>(rng: &mut R) -> SaleCompleted {
    let product = PRODUCTS.choose(rng).copied().unwrap_or(PRODUCTS[0]);
    let quantity: u32 = rng.random_range(1..=6);
    let customer = CUSTOMERS.choose(rng).copied().unwrap_or(CUSTOMERS[0]);
    let draft = SaleDraft {
        event_type: EVENT_TYPE.into(),
        sale_id: format!("V-{:016x}", rng.random::<u64>()),
        product_id: product.id,
        product_name: product.name.into(),
        quantity,
        total: (product.price_cents * u64::from(quantity)) as f64 / 100.0,
        customer_email: customer.into(),
        timestamp: Timestamp::now_utc().as_str().into(),
    };
    // Every catalogue entry and customer above is valid, so the draft always is; the fallback
    // only exists to avoid an unwrap.
    SaleCompleted::try_from(draft).unwrap_or_else(|_| example_sale())
}

/// The course document's example sale, with the current time.
pub fn example_sale() -> SaleCompleted {
    let draft = SaleDraft {
        event_type: EVENT_TYPE.into(),
        sale_id: "12345".into(),
        product_id: 1,
        product_name: "Manzana Orgánica".into(),
        quantity: 5,
        total: 75.0,
        customer_email: "cliente@example.com".into(),
        timestamp: "2024-12-04T10:30:00".into(),
    };
    match SaleCompleted::try_from(draft) {
        Ok(sale) => sale,
        // The literal above is the seed example and is checked by a unit test.
        Err(e) => unreachable!("the seed example is invalid: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn catalogue_is_valid_and_has_accents() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let sale = random_sale(&mut rng);
            assert_ne!(sale.sale_id(), "12345");
            assert!((1..=6).contains(&sale.quantity()));
        }
        assert!(PRODUCTS.iter().any(|p| !p.name.is_ascii()));
        assert_eq!(example_sale().sale_id(), "12345");
    }
}
