//! A route guide server and client exercising the four kinds of RPC.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use grpc_runtime::{Request, Response, ResponseSender, Status, Streaming};

use crate::proto::route_guide::{Feature, Point, Rectangle, RouteNote, RouteSummary};
use crate::proto::route_guide_grpc::RouteGuide;

/// A point from degrees.
pub fn point(latitude: f64, longitude: f64) -> Point {
    let mut p = Point::new();
    p.latitude = (latitude * 1e7) as i32;
    p.longitude = (longitude * 1e7) as i32;
    p
}

fn feature(name: &str, latitude: f64, longitude: f64) -> Feature {
    let mut f = Feature::new();
    f.name = name.to_owned();
    f.location = protobuf::MessageField::some(point(latitude, longitude));
    f
}

/// The service: a few known features, and the notes left so far.
#[derive(Debug)]
pub struct RouteGuideService {
    features: Vec<Feature>,
    notes: Mutex<HashMap<(i32, i32), Vec<RouteNote>>>,
}

impl Default for RouteGuideService {
    fn default() -> Self {
        RouteGuideService {
            features: vec![
                feature("Patriots Path, Mendham, NJ 07945, USA", 40.7838, -74.6144),
                feature(
                    "101 New Jersey 10, Whippany, NJ 07981, USA",
                    40.8123,
                    -74.3999,
                ),
                feature("U.S. 6, Shohola, PA 18458, USA", 41.4247, -74.9889),
                feature("5 Conners Road, Kingston, NY 12401, USA", 41.9346, -74.0486),
            ],
            notes: Mutex::new(HashMap::new()),
        }
    }
}

fn inside(p: &Point, r: &Rectangle) -> bool {
    let (lo, hi) = (r.lo.get_or_default(), r.hi.get_or_default());
    let (left, right) = (
        lo.longitude.min(hi.longitude),
        lo.longitude.max(hi.longitude),
    );
    let (bottom, top) = (lo.latitude.min(hi.latitude), lo.latitude.max(hi.latitude));
    (left..=right).contains(&p.longitude) && (bottom..=top).contains(&p.latitude)
}

/// Great-circle distance in metres (haversine).
fn distance(a: &Point, b: &Point) -> f64 {
    let rad = |v: i32| (f64::from(v) / 1e7).to_radians();
    let (lat1, lat2) = (rad(a.latitude), rad(b.latitude));
    let dlat = lat2 - lat1;
    let dlon = rad(b.longitude) - rad(a.longitude);
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().atan2((1.0 - h).sqrt())
}

impl RouteGuide for RouteGuideService {
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        let at = request.into_inner();
        let found = self
            .features
            .iter()
            .find(|f| f.location.as_ref() == Some(&at));
        Ok(Response::new(match found {
            Some(f) => f.clone(),
            None => {
                let mut unnamed = Feature::new();
                unnamed.location = protobuf::MessageField::some(at);
                unnamed
            }
        }))
    }

    async fn list_features(
        &self,
        request: Request<Rectangle>,
        mut responses: ResponseSender<Feature>,
    ) -> Result<(), Status> {
        let rect = request.into_inner();
        for f in &self.features {
            if inside(f.location.get_or_default(), &rect) {
                responses.send(f.clone()).await?;
            }
        }
        Ok(())
    }

    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let started = Instant::now();
        let mut points = request.into_inner();
        let mut summary = RouteSummary::new();
        let mut last: Option<Point> = None;
        let mut total = 0.0;
        while let Some(p) = points.message().await? {
            summary.point_count += 1;
            if self
                .features
                .iter()
                .any(|f| f.location.as_ref() == Some(&p))
            {
                summary.feature_count += 1;
            }
            if let Some(prev) = &last {
                total += distance(prev, &p);
            }
            last = Some(p);
        }
        summary.distance = total as i32;
        summary.elapsed_time = started.elapsed().as_secs() as i32;
        Ok(Response::new(summary))
    }

    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
        mut responses: ResponseSender<RouteNote>,
    ) -> Result<(), Status> {
        let mut notes = request.into_inner();
        while let Some(note) = notes.message().await? {
            let at = note.location.get_or_default();
            let key = (at.latitude, at.longitude);
            let earlier = {
                let mut all = self.notes.lock().unwrap();
                let here = all.entry(key).or_default();
                let earlier = here.clone();
                here.push(note);
                earlier
            };
            for n in earlier {
                responses.send(n).await?;
            }
        }
        Ok(())
    }
}

/// Runs the four calls against a route guide at `target`, printing what comes back.
///
/// # Errors
///
/// The status of the first call that fails.
pub async fn run_client(target: &str) -> Result<(), Box<dyn std::error::Error>> {
    use crate::proto::route_guide_grpc::RouteGuideClient;
    use grpc_runtime::client::Channel;

    let client = RouteGuideClient::new(Channel::new(target)?);

    // Unary.
    let feature = client
        .get_feature(point(40.7838, -74.6144))
        .await?
        .into_inner();
    println!("GetFeature: {:?}", feature.name);

    // Server streaming.
    let mut rect = Rectangle::new();
    rect.lo = protobuf::MessageField::some(point(40.0, -75.0));
    rect.hi = protobuf::MessageField::some(point(42.0, -74.0));
    let mut features = client.list_features(rect).await?;
    while let Some(f) = features.message().await? {
        println!("ListFeatures: {:?}", f.name);
    }

    // Client streaming.
    let route = vec![
        point(40.7838, -74.6144),
        point(40.8123, -74.3999),
        point(41.4247, -74.9889),
    ];
    let summary = client
        .record_route(futures_util::stream::iter(route))
        .await?
        .into_inner();
    println!(
        "RecordRoute: {} points, {} features, {} m",
        summary.point_count, summary.feature_count, summary.distance
    );

    // Bidi streaming.
    let notes = ["first", "second", "third", "fourth"].map(|text| {
        let mut note = RouteNote::new();
        note.location =
            protobuf::MessageField::some(point(1.0, if text.len() % 2 == 0 { 1.0 } else { 2.0 }));
        note.message = text.to_owned();
        note
    });
    // Requests go out through the sender while replies come in on the stream.
    let (mut requests, mut replies) = client.route_chat(()).await?;
    for note in notes {
        requests.send(note).await?;
    }
    requests.close();
    while let Some(note) = replies.message().await? {
        println!("RouteChat: earlier note {:?}", note.message);
    }
    Ok(())
}
